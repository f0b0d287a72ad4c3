"""The error tree of ``eventstore``. Every error carries what is at fault as attributes::

EventStoreError
├── ConcurrencyError        expected version did not hold (stream, expected, actual)
├── AggregateNotFound       no such aggregate, or not at that version
├── InvalidEvent            a batch was refused before anything was written
│   ├── EventTooLarge       an event is over the store's size limit (stream, index, sizes)
│   └── BatchTooLarge       a batch has too many events or bytes (stream, sizes)
├── StoredDataError         stored data cannot be read back (stream, version, field)
│   ├── UnknownEventType    no class registered for a stored type name
│   └── SnapshotError       a snapshot that cannot be loaded
├── ConfigurationError      namespace or server set up in a way we refuse
│   └── UnsafeServerConfig  e.g. an eviction policy that can delete history
├── DurabilityError         the write happened but the durability wait timed out
├── PermissionDenied        the Redis user lacks a command, key or channel (ACL NOPERM)
├── OutOfMemory             the server refused the write (maxmemory); nothing written
├── SubscriptionError       a reader could not reach the server for too long (checkpoint)
├── LiveFeedFellBehind      a live feed's queue overflowed: re-read (selection, dropped)
├── WorkerDisconnected      a group's worker could not reach the server for too long
├── ProjectionError         a projection handler failed (projection, event, position)
├── ProjectionTakenOver     another runner started the same projection version
├── GroupNotFound           no such consumer group on a partition stream (group, stream)
└── DeadLetterNotFound      no dead letter with that id in the group (group, dead_letter_id)
"""

from __future__ import annotations

__all__ = [
    "AggregateNotFound",
    "BatchTooLarge",
    "ConcurrencyError",
    "ConfigurationError",
    "DurabilityError",
    "DeadLetterNotFound",
    "GroupNotFound",
    "EventStoreError",
    "EventTooLarge",
    "InvalidEvent",
    "LiveFeedFellBehind",
    "PermissionDenied",
    "OutOfMemory",
    "ProjectionError",
    "ProjectionTakenOver",
    "SnapshotError",
    "StoredDataError",
    "SubscriptionError",
    "UnknownEventType",
    "UnsafeServerConfig",
    "WorkerDisconnected",
]


class EventStoreError(Exception):
    """Root of every error raised by ``eventstore``."""


class ConcurrencyError(EventStoreError):
    """The stream was not at the expected version: someone else wrote first.

    Reload the aggregate and retry the command. ``conflicting_version`` is set when a
    re-sent batch found other events (other ids) at the versions it claims.
    """

    def __init__(
        self,
        stream: str,
        expected_version: int | str,
        actual_version: int,
        conflicting_version: int | None = None,
    ) -> None:
        self.stream = stream
        self.expected_version = expected_version
        self.actual_version = actual_version
        self.conflicting_version = conflicting_version
        detail = (
            f"; version {conflicting_version} holds another event id"
            if conflicting_version is not None
            else ""
        )
        super().__init__(
            f"{stream}: expected version {expected_version}, actual version {actual_version}"
            f"{detail}"
        )


class AggregateNotFound(EventStoreError, KeyError):
    """No events are stored for the aggregate (or fewer than the version asked for)."""

    def __init__(self, aggregate_type: str, aggregate_id: str, version: int | None = None) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.version = version
        at = f" at version {version}" if version is not None else ""
        super().__init__(f"{aggregate_type} {aggregate_id!r} not found{at}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class InvalidEvent(EventStoreError, ValueError):
    """An event of a batch was refused; nothing of the batch was written."""

    def __init__(
        self, stream: str, index: int, field: str, reason: str, event_type: str = ""
    ) -> None:
        self.stream = stream
        self.index = index
        self.field = field
        self.event_type = event_type
        self.reason = reason
        what = f" ({event_type})" if event_type else ""
        super().__init__(
            f"{stream}: event #{index}{what} field {field!r}: {reason}; nothing was written"
        )


class EventTooLarge(InvalidEvent):
    """An event's encoded size (data plus metadata JSON, in bytes) is over the store's limit."""

    def __init__(self, stream: str, index: int, event_type: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            stream, index, "size", f"{size} bytes is over the limit of {limit}", event_type
        )


class BatchTooLarge(InvalidEvent):
    """A batch has more events, or more bytes, than one append may carry.

    ``what`` is ``"events"`` or ``"bytes"``. Split the batch (each part is atomic on
    its own) or raise the store's ``Limits``.
    """

    def __init__(self, stream: str, what: str, size: int, limit: int) -> None:
        self.what = what
        self.size = size
        self.limit = limit
        super().__init__(stream, 0, "batch", f"{size} {what} is over the limit of {limit}")


class StoredDataError(EventStoreError):
    """Stored data cannot be turned back into events or state."""

    def __init__(self, stream: str, version: int, field: str, reason: str) -> None:
        self.stream = stream
        self.version = version
        self.field = field
        self.reason = reason
        super().__init__(f"{stream} version {version} field {field!r}: {reason}")


class UnknownEventType(StoredDataError):
    """A stored event names a type no ``DomainEvent`` class is registered for."""

    def __init__(self, stream: str, version: int, event_type: str) -> None:
        self.event_type = event_type
        super().__init__(
            stream,
            version,
            "t",
            f"unknown event type {event_type!r} (import the module that defines it)",
        )


class SnapshotError(StoredDataError):
    """A snapshot exists but cannot be loaded (corrupt JSON, invalid state)."""


class ConfigurationError(EventStoreError):
    """The namespace or the server is configured in a way this store refuses."""


class UnsafeServerConfig(ConfigurationError):
    """The server's configuration could lose history (e.g. an allkeys-* eviction policy)."""

    def __init__(self, setting: str, value: str, advice: str) -> None:
        self.setting = setting
        self.value = value
        super().__init__(
            f"server setting {setting}={value!r} is unsafe for an event store: {advice}"
        )


class DurabilityError(EventStoreError):
    """The events were appended, but the durability wait did not confirm in time.

    The write may still persist (or be lost in a failover): do not blindly retry with a
    new expected version; re-send the same batch (same event ids), which is idempotent.
    """

    def __init__(self, stream: str, wanted: str, got: str) -> None:
        self.stream = stream
        self.wanted = wanted
        self.got = got
        super().__init__(
            f"{stream}: appended, but durability wait got {got} (wanted {wanted}); "
            "the write may still persist: re-send the same events to make sure"
        )


class OutOfMemory(EventStoreError):
    """The server refused the append: ``maxmemory`` is reached (policy ``noeviction``).

    Redis refuses a script only at its first write, so nothing of the batch was written:
    free memory (or raise ``maxmemory``) and send the same batch again.
    """

    def __init__(self, stream: str, reason: str) -> None:
        self.stream = stream
        self.reason = reason
        super().__init__(
            f"{stream}: the Redis server is out of memory (maxmemory reached) and refused "
            f"the append; nothing was written. Free memory or raise maxmemory, then "
            f"re-send. Server said: {reason}"
        )


class PermissionDenied(EventStoreError):
    """The Redis user may not run a command, or touch a key or channel, the store needs.

    Redis refused it (an ACL ``NOPERM``, also when raised inside one of our scripts).
    ``permission`` is what is missing as ACL syntax (``+xadd``, ``~<key>``,
    ``&<channel>``); ``command``, ``keys`` and ``channel`` say what was refused as far as
    Redis tells; ``reason`` is Redis' own text. ``eventstore.acl_rule`` gives the rule
    that grants everything the store needs.
    """

    def __init__(
        self,
        user: str,
        permission: str,
        *,
        command: str = "",
        keys: tuple[str, ...] = (),
        channel: str = "",
        where: str = "",
        reason: str = "",
    ) -> None:
        self.user = user
        self.permission = permission
        self.command = command
        self.keys = keys
        self.channel = channel
        self.where = where
        self.reason = reason
        at = f" in {where}" if where else ""
        said = f" (Redis: {reason})" if reason else ""
        super().__init__(
            f"Redis user {user!r} lacks the permission {permission}{at}{said}; "
            "grant the rule of eventstore.acl_rule(namespace) (docs/operations.md)"
        )


class SubscriptionError(EventStoreError):
    """A subscription gave up reconnecting; resume later from ``checkpoint`` (a string)."""

    def __init__(self, checkpoint: str, reason: str) -> None:
        self.checkpoint = checkpoint
        self.reason = reason
        super().__init__(f"subscription stopped at checkpoint {checkpoint!r}: {reason}")


class LiveFeedFellBehind(EventStoreError):
    """A live feed's consumer did not keep up: its queue filled and notifications were dropped.

    Raised from the feed's iteration (once per overflow), never from the shared reader, so
    a slow feed costs the others nothing. ``selection`` is the feed's ``LiveSelection``;
    ``dropped`` how many notifications it did not hand out (those that did not fit and
    those still queued, which are discarded). Re-read what you show from the store, then
    iterate again: the feed stays subscribed and queues what comes from now on.
    """

    def __init__(self, selection: object, dropped: int) -> None:
        self.selection = selection
        self.dropped = dropped
        super().__init__(
            f"live feed ({selection}) fell behind: {dropped} notifications dropped; "
            "re-read from the store and go on iterating"
        )


class WorkerDisconnected(EventStoreError):
    """A consumer group's worker gave up after ``reconnect_for`` seconds without a server.

    Nothing is lost: the events it held stay pending for it (``run`` again with the same
    consumer name drains them first) or for another worker after ``claim_idle``.
    """

    def __init__(self, group: str, consumer: str, reconnect_for: float, reason: str) -> None:
        self.group = group
        self.consumer = consumer
        self.reconnect_for = reconnect_for
        self.reason = reason
        super().__init__(
            f"worker {consumer!r} of consumer group {group!r} stopped: no server for "
            f"{reconnect_for:g}s ({reason}); its events stay pending"
        )


class ProjectionTakenOver(EventStoreError):
    """Another runner started the same projection version; this one stopped.

    Nothing of the page it was applying was committed: the new runner applies it.
    """

    def __init__(self, projection: str, version: int, lease: str) -> None:
        self.projection = projection
        self.version = version
        self.lease = lease
        super().__init__(
            f"projection {projection!r} version {version} was started by another runner "
            f"({lease} changed); this runner stopped without committing its last page"
        )


class ProjectionError(EventStoreError):
    """A projection stopped at an event its handler (or its read model write) failed on.

    The event was not skipped: the projection's checkpoint stays before it, so a restart
    after the fix handles it again. ``__cause__`` is the original exception.
    """

    def __init__(
        self,
        projection: str,
        *,
        event_type: str,
        stream: str,
        version: int,
        partition: int,
        position: int,
        reason: str,
    ) -> None:
        self.projection = projection
        self.event_type = event_type
        self.stream = stream
        self.version = version
        self.partition = partition
        self.position = position
        self.reason = reason
        super().__init__(
            f"projection {projection!r} stopped at {event_type} {stream} version {version} "
            f"(partition {partition}, position {position}): {reason}"
        )


class GroupNotFound(EventStoreError):
    """The consumer group does not exist on a stream (create it with ``consumer_group``)."""

    def __init__(self, group: str, stream: str) -> None:
        self.group = group
        self.stream = stream
        super().__init__(f"consumer group {group!r} does not exist on {stream}")


class DeadLetterNotFound(EventStoreError, KeyError):
    """No dead letter with this id in the group (replayed or discarded already?)."""

    def __init__(self, group: str, dead_letter_id: str) -> None:
        self.group = group
        self.dead_letter_id = dead_letter_id
        super().__init__(f"consumer group {group!r} has no dead letter {dead_letter_id!r}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])
