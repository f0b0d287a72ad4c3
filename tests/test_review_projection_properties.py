"""Property: a projection failing at random events keeps model and checkpoint together.

After every stop (a handler raising on any event of a page, whether or not handlers read
the model through ``ctx.client``), the model holds exactly the events at or below the
stored checkpoint of their partition, each once; rerunning ends with every event once.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import EventStore, Projection, ProjectionContext, ProjectionError, RecordedEvent
from tests.domain import Deposited, Opened

FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@FIXTURE_OK
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=8),
    failing=st.sets(st.integers(min_value=0, max_value=30), max_size=4),
    reads=st.booleans(),
    page_size=st.integers(min_value=1, max_value=5),
)
def test_model_matches_the_checkpoint_after_every_failure(
    redis_url: str, sizes: list[int], failing: set[int], reads: bool, page_size: int
) -> None:
    namespace = f"t{uuid.uuid4().hex[:8]}"
    with EventStore.from_url(redis_url, namespace=namespace, partitions=2) as store:
        for index, size in enumerate(sizes):
            events = [Opened(owner="o")] + [Deposited(amount=n) for n in range(1, size)]
            store.append("Account", f"a{index}", events, 0)
        recorded = list(store.read_all())
        fail_once = {recorded[i].event_id for i in failing if i < len(recorded)}
        projection = Projection(store, "once", page_size=page_size)

        @projection.on(Deposited)
        def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
            if reads:
                ctx.client.hget(ctx.key("applied"), ctx.record.event_id)
            if ctx.record.event_id in fail_once:
                fail_once.discard(ctx.record.event_id)
                raise RuntimeError("fails once")
            ctx.pipe.hincrby(ctx.key("applied"), ctx.record.event_id, 1)

        for _attempt in range(len(failing) + 1):
            try:
                projection.run(until_caught_up=True)
                break
            except ProjectionError:
                pass
            _assert_model_matches_checkpoint(store, projection, recorded)
        _assert_model_matches_checkpoint(store, projection, recorded)
        assert projection.checkpoint() == store.head()
        assert projection.last_error() is None


def _assert_model_matches_checkpoint(
    store: EventStore, projection: Projection, recorded: list[RecordedEvent]
) -> None:
    checkpoint = projection.checkpoint()
    applied = store.client.hgetall(projection.key("applied"))
    expected = {
        r.event_id.encode(): b"1"
        for r in recorded
        if r.event_type == "Deposited" and r.position <= checkpoint.position(r.partition)
    }
    assert applied == expected
