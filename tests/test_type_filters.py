"""``event_types=`` and ``aggregate_types=`` take names or classes, on both fronts; anything
else is a ``TypeError`` naming the argument."""

from __future__ import annotations

import pytest

from eventstore import EventStore
from eventstore._core.types import type_names
from tests.domain import Account, Deposited, Opened, Withdrawn
from tests.fronts import FRONTS, Front, open_store


def test_names_and_classes_are_the_same_filter() -> None:
    assert type_names([Deposited, "Withdrawn"], "event_types") == frozenset(
        {"Deposited", "Withdrawn"}
    )
    assert type_names(Account, "aggregate_types") == frozenset({"Account"})
    assert type_names("Account", "aggregate_types") == frozenset({"Account"})
    assert type_names(None, "event_types") is None


@pytest.mark.parametrize(
    ("value", "argument", "named"),
    [
        ([Account], "event_types", "Account is not a DomainEvent class"),
        ([Deposited], "aggregate_types", "Deposited is not an Aggregate class"),
        ([1], "event_types", "got 1"),
        (3.5, "aggregate_types", "got 3.5"),
    ],
)
def test_anything_else_is_a_type_error(value: object, argument: str, named: str) -> None:
    with pytest.raises(TypeError, match=f"{argument}: .*{named}"):
        type_names(value, argument)


@pytest.mark.parametrize("front", FRONTS)
def test_read_all_and_read_log_filter_by_class(
    redis_url: str, namespace: str, front: Front
) -> None:
    with open_store(front, redis_url, namespace=namespace) as store:
        store.append("Account", "a", [Opened(owner="ann"), Deposited(amount=3)], 0)
        store.append("Other", "o", [Deposited(amount=4), Withdrawn(amount=1)], 0)
        by_class = list(store.read_all(event_types=[Deposited]))
        assert [e.event for e in by_class] == [Deposited(amount=3), Deposited(amount=4)]
        by_aggregate = list(store.read_all(aggregate_types=[Account], event_types=Deposited))
        assert [e.aggregate_id for e in by_aggregate] == ["a"]
        page = store.read_log(0, event_types=[Withdrawn])
        assert [e.event for e in page.events] == [Withdrawn(amount=1)]
        with pytest.raises(TypeError, match="event_types"):
            list(store.read_all(event_types=[object()]))  # type: ignore[list-item]


def test_subscribe_filters_by_class(store: EventStore) -> None:
    store.append("Account", "a", [Opened(owner="ann"), Deposited(amount=3)], 0)
    with store.subscribe(event_types=[Deposited]) as sub:
        assert next(sub).event == Deposited(amount=3)
