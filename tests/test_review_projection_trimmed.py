"""A projection version started after the log was trimmed can still be caught up.

``wait_until_caught_up`` compared the committed checkpoint with the positions handed
out; after a trim that emptied the log (e.g. every group and the serving version were
past it) a new version had nothing left to read, so its checkpoint never moved and the
wait never returned True: a blue/green rebuild could never be declared caught up.
"""

from __future__ import annotations

from eventstore import EventStore, Projection, ProjectionContext
from tests.domain import Deposited


def _totals(store: EventStore, version: int) -> Projection:
    projection = Projection(store, "totals", version=version)

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.incrby(ctx.key("total"), event.amount)

    return projection


def test_a_version_started_after_a_trim_is_caught_up(store: EventStore) -> None:
    store.append("Account", "a1", [Deposited(amount=n) for n in range(1, 4)], 0)
    blue = _totals(store, 1)
    blue.run(until_caught_up=True)
    assert [r.trimmed_to for r in store.trim_log()] == [4]  # blue is past every entry
    green = _totals(store, 2)
    green.run(until_caught_up=True)
    assert green.wait_until_caught_up(timeout=1.0)
    store.append("Account", "a1", [Deposited(amount=10)], 3)
    with green:
        assert green.wait_until_caught_up(timeout=5.0)
    assert int(store.client.get(green.key("total")) or 0) == 10
