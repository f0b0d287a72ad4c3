"""Property: concurrent writers, random stop/resume points; every event once, in order."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregates import DomainEvent
from eventstore import EventStore, RecordedEvent
from tests.domain import Deposited, Opened

# fixtures are per test, examples reuse them: every example works in a fresh namespace
FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

writer_batches = st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=6)


pytestmark = pytest.mark.both_fronts


def _write(store: EventStore, writer: int, batches: list[int], pause: float) -> None:
    versions: dict[str, int] = defaultdict(int)
    for index, size in enumerate(batches):
        aggregate_id = f"w{writer}-{index % 3}"
        first = versions[aggregate_id] == 0
        events: list[DomainEvent] = [Opened(owner=f"w{writer}")] if first else []
        events += [Deposited(amount=n + 1) for n in range(size - len(events))]
        store.append("Account", aggregate_id, events, versions[aggregate_id])
        versions[aggregate_id] += len(events)
        time.sleep(pause)


def _read_chain(
    store: EventStore,
    total: int,
    stops: list[int],
    event_types: list[str] | None,
    page_size: int,
) -> list[RecordedEvent]:
    """Read ``total`` events, stopping after each count in ``stops`` and resuming."""
    delivered: list[RecordedEvent] = []
    checkpoint: str | None = None
    for stop_after in [*stops, total]:
        wanted = min(stop_after, total - len(delivered))
        with store.subscribe(
            after=checkpoint, event_types=event_types, block_ms=50, page_size=page_size
        ) as sub:
            watchdog = threading.Timer(20, sub.stop)
            watchdog.start()
            try:
                for recorded in sub if wanted else ():
                    delivered.append(recorded)
                    wanted -= 1
                    if wanted == 0:
                        break
            finally:
                watchdog.cancel()
            checkpoint = str(sub.checkpoint)
        if len(delivered) >= total:
            break
    return delivered


@FIXTURE_OK
@given(
    partitions=st.sampled_from([1, 3]),
    plans=st.lists(writer_batches, min_size=1, max_size=3),
    stops=st.lists(st.integers(min_value=0, max_value=8), max_size=4),
    pause=st.sampled_from([0.0, 0.001, 0.003]),
    filtered=st.booleans(),
    page_size=st.sampled_from([1, 3, 500]),
)
def test_every_event_exactly_once_per_resume_chain(
    redis_url: str,
    partitions: int,
    plans: list[list[int]],
    stops: list[int],
    *,
    pause: float,
    filtered: bool,
    page_size: int,
) -> None:
    namespace = f"p{uuid.uuid4().hex[:8]}"
    with EventStore.from_url(redis_url, namespace=namespace, partitions=partitions) as store:
        writers = [
            threading.Thread(target=_write, args=(store, w, batches, pause))
            for w, batches in enumerate(plans)
        ]
        for thread in writers:
            thread.start()
        event_types = ["Deposited"] if filtered else None
        total_written = sum(sum(batches) for batches in plans)
        opened = sum(min(len(batches), 3) for batches in plans)
        total = total_written - opened if filtered else total_written
        delivered = _read_chain(store, total, stops, event_types, page_size)
        for thread in writers:
            thread.join()

        expected = list(store.read_all(event_types=event_types))
        ids = [e.event_id for e in delivered]
        assert len(ids) == len(set(ids)) == total
        assert set(ids) == {e.event_id for e in expected}

        by_partition: dict[int, list[int]] = defaultdict(list)
        by_aggregate: dict[str, list[int]] = defaultdict(list)
        for recorded in delivered:
            by_partition[recorded.partition].append(recorded.position)
            by_aggregate[recorded.aggregate_id].append(recorded.version)
        for partition, seen in by_partition.items():
            if filtered:
                assert seen == sorted(seen)
            else:
                assert seen == list(range(1, store.last_position(partition) + 1))
        for aggregate_id, versions in by_aggregate.items():
            first = 2 if filtered else 1
            assert versions == list(range(first, store.version_of("Account", aggregate_id) + 1))
