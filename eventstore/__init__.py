"""redis-eventstore: event sourcing on Redis Streams.

::

    from eventstore import EventStore, Repository

    store = EventStore.from_url("redis://127.0.0.1:6379/0", namespace="bank")
    accounts = Repository(store, Account, snapshot_every=100)
    accounts.save(account)
    account = accounts.get(account.id)
"""

from eventstore._core.errors import (
    AggregateNotFound,
    ConcurrencyError,
    ConfigurationError,
    DurabilityError,
    EventStoreError,
    InvalidEvent,
    SnapshotError,
    StoredDataError,
    UnknownEventType,
    UnsafeServerConfig,
)
from eventstore._core.expected import ExpectedVersion
from eventstore._core.keys import KeySchema
from eventstore._core.records import AppendResult, NewEvent, RecordedEvent, Snapshot
from eventstore._redis.repository import Repository
from eventstore._redis.store import Durability, EventStore

__all__ = [
    "EventStore",
    "Repository",
    "Durability",
    "ExpectedVersion",
    "KeySchema",
    "AppendResult",
    "NewEvent",
    "RecordedEvent",
    "Snapshot",
    "EventStoreError",
    "ConcurrencyError",
    "AggregateNotFound",
    "InvalidEvent",
    "StoredDataError",
    "UnknownEventType",
    "SnapshotError",
    "ConfigurationError",
    "UnsafeServerConfig",
    "DurabilityError",
]
