"""redis-eventstore: event sourcing on Redis Streams.

::

    from eventstore import EventStore, Repository

    store = EventStore.from_url("redis://127.0.0.1:6379/0", namespace="bank")
    accounts = Repository(store, Account, snapshot_every=100)
    accounts.save(account)
    account = accounts.get(account.id)

The asyncio front has the same names with ``Async`` in front, awaited::

    store = await AsyncEventStore.from_url("redis://127.0.0.1:6379/0", namespace="bank")
    accounts = AsyncRepository(store, Account, snapshot_every=100)
    await accounts.save(account)
"""

from eventstore._async.groups import AsyncConsumerGroup
from eventstore._async.live import AsyncLiveFeed
from eventstore._async.projection import AsyncProjection, AsyncProjectionContext
from eventstore._async.repository import AsyncRepository
from eventstore._async.store import AsyncEventStore
from eventstore._async.subscription import AsyncCatchUpSubscription
from eventstore._async.worker import AsyncWorker
from eventstore._core.acl import acl_rule
from eventstore._core.checkpoint import FROM_NOW, Checkpoint
from eventstore._core.errors import (
    AggregateNotFound,
    BatchTooLarge,
    ConcurrencyError,
    ConfigurationError,
    DeadLetterNotFound,
    DurabilityError,
    EventStoreError,
    EventTooLarge,
    GroupNotFound,
    InvalidEvent,
    LiveFeedFellBehind,
    OutOfMemory,
    PermissionDenied,
    ProjectionError,
    ProjectionTakenOver,
    SnapshotError,
    StoredDataError,
    SubscriptionError,
    UnknownEventType,
    UnsafeServerConfig,
    WorkerDisconnected,
)
from eventstore._core.expected import ExpectedVersion
from eventstore._core.groups import DeadLetter, ErrorInfo, PartitionStatus, TrimResult
from eventstore._core.keys import KeySchema
from eventstore._core.limits import Limits
from eventstore._core.notifications import LiveChannels, LiveNotification, LiveStats
from eventstore._core.projections import ProjectionFailure
from eventstore._core.records import AppendResult, NewEvent, RecordedEvent, Snapshot
from eventstore._core.redact import redact_url
from eventstore._redis.groups import ConsumerGroup
from eventstore._redis.live import LiveFeed
from eventstore._redis.projection import Projection, ProjectionContext
from eventstore._redis.repository import Repository
from eventstore._redis.store import Durability, EventStore
from eventstore._redis.subscription import CatchUpSubscription
from eventstore._redis.worker import Worker, WorkerStats

__all__ = [
    "EventStore",
    "Repository",
    # the asyncio front
    "AsyncEventStore",
    "AsyncRepository",
    "AsyncCatchUpSubscription",
    "AsyncProjection",
    "AsyncProjectionContext",
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
    "OutOfMemory",
    # security and limits
    "acl_rule",
    "redact_url",
    "Limits",
    "PermissionDenied",
    "EventTooLarge",
    "BatchTooLarge",
    # consumer groups
    "ConsumerGroup",
    "Worker",
    "AsyncConsumerGroup",
    "AsyncWorker",
    "WorkerStats",
    "DeadLetter",
    "ErrorInfo",
    "PartitionStatus",
    "TrimResult",
    "GroupNotFound",
    "DeadLetterNotFound",
    "WorkerDisconnected",
    # reading
    "Checkpoint",
    "FROM_NOW",
    "CatchUpSubscription",
    "Projection",
    "ProjectionContext",
    "ProjectionFailure",
    "LiveFeed",
    "AsyncLiveFeed",
    "LiveFeedFellBehind",
    "LiveChannels",
    "LiveNotification",
    "LiveStats",
    "ProjectionError",
    "ProjectionTakenOver",
    "SubscriptionError",
]
