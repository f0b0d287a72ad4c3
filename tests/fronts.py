"""Both fronts behind the sync API, for suites that hold each to the same rules.

``open_store("async", url, ...)`` is an ``AsyncEventStore`` driven through
``BlockingAsyncStore``: every call runs the async code path on an event loop thread.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar, cast

from aggregates import Aggregate
from eventstore import EventStore, Repository
from eventstore.testing import BlockingAsyncStore

A = TypeVar("A", bound=Aggregate)

Front = Literal["sync", "async"]
FRONTS: tuple[Front, ...] = ("sync", "async")


def open_store(front: Front, url: str, **options: Any) -> EventStore:
    """A store of ``front`` on ``url`` (``EventStore.from_url``'s options)."""
    if front == "sync":
        return EventStore.from_url(url, **options)
    return cast(EventStore, BlockingAsyncStore.from_url(url, **options))


def repository(store: EventStore, aggregate_class: type[A], **options: Any) -> Repository[A]:
    """``Repository`` for a sync store, ``AsyncRepository`` (sync face) for an async one."""
    if isinstance(store, BlockingAsyncStore):
        return cast(Repository[A], store.repository(aggregate_class, **options))
    return Repository(store, aggregate_class, **options)
