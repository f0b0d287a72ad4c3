"""Consumer groups without I/O: reply parsing, dead-letter records, lag arithmetic.

A group reads two streams per partition: the partition log (entry id ``0-<position>``,
so positions give exact lag) and the group's retry stream, where replayed dead letters
wait (auto ids; acknowledged entries are deleted, so its length minus its pending count
is exactly what is still undelivered there). Replies arrive as RESP2 lists or RESP3 maps
depending on the client; every parser here accepts both.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from eventstore._core.codec import version_of_id
from eventstore._core.errors import StoredDataError
from eventstore._core.keys import KeySchema
from eventstore._core.log import Pointer
from eventstore._core.records import RecordedEvent
from eventstore._core.replies import field_map

__all__ = [
    "ClaimReply",
    "DeadLetter",
    "ErrorInfo",
    "GroupInfo",
    "PartitionStatus",
    "PendingEntry",
    "RawEntry",
    "TrimResult",
    "WorkerStats",
    "dead_letter_fields",
    "dead_letter_id",
    "dead_letter_pointer",
    "describe_error",
    "parse_claim_reply",
    "parse_dead_letter",
    "log_lag",
    "parse_first_position",
    "parse_group_info",
    "parse_pending_entries",
    "parse_pending_count",
    "parse_read_reply",
    "parse_trim_reply",
    "split_dead_letter_id",
    "partition_status",
    "pointer_fields",
    "pointer_from_fields",
]

RawEntry = tuple[bytes, dict[bytes, bytes] | list[bytes] | None]
"""A stream entry from a group read: ``(id, fields)``, the fields as the reply holds them
(a flat list, or a map on RESP3), ``None`` if the entry was deleted."""

TRACEBACK_LIMIT = 2000
"""Characters of traceback kept with a dead letter: enough to find the line, not a dump."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(raw: Sequence[Any] | None) -> list[RawEntry]:
    # fields stay as the reply holds them: the log parser reads the flat list directly
    return [(entry[0], entry[1]) for entry in raw or () if entry is not None]


def parse_read_reply(reply: Any) -> dict[str, list[RawEntry]]:
    """XREADGROUP's reply (RESP2 list of pairs, RESP3 map, or nil) as stream -> entries."""
    if not reply:
        return {}
    pairs = reply.items() if isinstance(reply, dict) else reply
    return {_text(stream): _entries(entries) for stream, entries in pairs}


@attrs.frozen
class ClaimReply:
    """XAUTOCLAIM's reply. ``deleted`` lists ids the server dropped (7.x only);
    ``has_holes`` says 6.2 returned nil for deleted entries without naming them."""

    cursor: str
    entries: tuple[RawEntry, ...]
    deleted: tuple[str, ...]
    has_holes: bool

    @property
    def done(self) -> bool:
        return self.cursor == "0-0"


def parse_claim_reply(reply: Sequence[Any]) -> ClaimReply:
    """Parse XAUTOCLAIM: 6.2 replies ``[cursor, entries-with-nils]``, 7.x adds deleted ids."""
    raw_entries = list(reply[1] or ())
    deleted = tuple(_text(i) for i in reply[2]) if len(reply) > 2 and reply[2] else ()
    return ClaimReply(
        _text(reply[0]),
        tuple(_entries(raw_entries)),
        deleted,
        any(entry is None for entry in raw_entries),
    )


@attrs.frozen
class PendingEntry:
    """One line of XPENDING's extended form: who holds an entry, how long, how often."""

    entry_id: str
    consumer: str
    idle_ms: int
    deliveries: int


def parse_pending_entries(reply: Sequence[Any]) -> list[PendingEntry]:
    """Parse ``XPENDING key group [IDLE ms] start end count [consumer]``."""
    return [
        PendingEntry(_text(entry_id), _text(consumer), int(idle), int(count))
        for entry_id, consumer, idle, count in reply
    ]


def parse_first_position(reply: Sequence[Any], last_position: int) -> int:
    """The position of a log's first entry from ``XRANGE log - + COUNT 1``
    (``last_position + 1`` when the log is empty)."""
    return version_of_id(reply[0][0]) if reply else last_position + 1


def log_lag(last_position: int, done: int, first_position: int) -> int:
    """Entries of a log after position ``done`` that a reader can still get.

    Entries a trim removed (below ``first_position``, the log's first entry, or
    ``last_position + 1`` when the trim emptied it) can never be read, so they are no lag.
    """
    return max(last_position - max(done, first_position - 1), 0)


def parse_pending_count(reply: Sequence[Any]) -> int:
    """The total of XPENDING's summary form ``[count, min, max, consumers]``."""
    return int(reply[0])


@attrs.frozen
class GroupInfo:
    """What XINFO GROUPS says about one group on one stream."""

    name: str
    consumers: int
    pending: int
    last_delivered_id: str


def parse_group_info(reply: Sequence[Any], group: str) -> GroupInfo | None:
    """Find ``group`` in XINFO GROUPS (list of maps in RESP3, flat lists in RESP2)."""
    for raw in reply:
        info = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))
        info = {_text(k): v for k, v in info.items()}
        if _text(info["name"]) == group:
            return GroupInfo(
                group,
                int(info["consumers"]),
                int(info["pending"]),
                _text(info["last-delivered-id"]),
            )
    return None


@attrs.frozen
class PartitionStatus:
    """A group on one partition, from one consistent read.

    ``lag``: events not yet delivered to the group (log plus replayed dead letters);
    ``pending``: delivered and not acknowledged; ``dead_letters``: parked events.
    """

    partition: int
    last_position: int
    delivered_position: int
    lag: int
    pending: int
    dead_letters: int


def partition_status(
    partition: int,
    *,
    last_position: int,
    log_group: GroupInfo,
    retry_length: int,
    retry_pending: int,
    dead_letters: int,
    first_position: int = 1,
) -> PartitionStatus:
    """Exact lag from positions: the log is gap-free, so lag = last - last delivered.

    Works on 6.2 (whose XINFO has no ``lag``) and after trims (which keep positions).
    ``first_position`` is the log's first entry (``last_position + 1`` when a trim
    emptied it): entries trimmed below it can never be delivered, so they are no lag
    (a group created after a trim would otherwise lag by them forever).
    Acknowledged retry entries are deleted, so the retry stream's undelivered part is
    its length minus its pending entries.
    """
    delivered = _delivered_position(log_group.last_delivered_id, last_position)
    return PartitionStatus(
        partition,
        last_position,
        delivered,
        log_lag(last_position, delivered, first_position) + retry_length - retry_pending,
        log_group.pending + retry_pending,
        dead_letters,
    )


def _delivered_position(last_delivered_id: str, last_position: int) -> int:
    # Our entries are 0-<position>; an entry id some other writer put into the log with a
    # time part (e.g. 1-0) sorts after every position: delivering it delivered them all.
    if not last_delivered_id.startswith("0-"):
        return last_position
    return version_of_id(last_delivered_id)


@attrs.define
class WorkerStats:
    """Counts of what a worker did (since it was created), on either front.

    ``processed``: handled and acknowledged; ``failed``: handler raised; ``dead_lettered``:
    parked; ``claimed``: taken over from idle holders; ``deleted``: entries gone from the
    stream before they could be handled (acknowledged and skipped); ``lost``: entries
    another worker claimed while this one still held them.
    """

    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    claimed: int = 0
    deleted: int = 0
    lost: int = 0


# -- pointers in retry and dead-letter entries ------------------------------------------


def pointer_fields(pointer: Pointer) -> dict[str, str | int]:
    """The fields that let a retry or dead-letter entry find its event again."""
    return {
        "k": pointer.stream,
        "v": pointer.version,
        "t": pointer.event_type,
        "a": pointer.aggregate_type,
        "p": pointer.position,
    }


def pointer_from_fields(
    schema: KeySchema,
    partition: int,
    key: str,
    entry_id: str,
    raw: Mapping[bytes, bytes] | list[bytes],
) -> Pointer:
    """Rebuild a pointer stored by ``pointer_fields`` (``StoredDataError`` if malformed)."""
    try:
        fields = field_map(raw)
        stream = _text(fields[b"k"])
        version, position = int(fields[b"v"]), int(fields[b"p"])
        event_type, aggregate_type = _text(fields[b"t"]), _text(fields[b"a"])
    except (KeyError, ValueError, TypeError) as exc:
        raise StoredDataError(key, 0, "k/v/t/a/p", f"malformed entry {entry_id}: {exc!r}") from exc
    parsed = schema.parse_stream(stream)
    if parsed is None:
        raise StoredDataError(key, 0, "k", f"entry {entry_id}: not a stream key: {stream!r}")
    return Pointer(
        partition, position, stream, version, event_type, aggregate_type, parsed.aggregate_id
    )


# -- dead letters ------------------------------------------------------------------------


@attrs.frozen
class ErrorInfo:
    """Why a delivery failed: exception type, message and the last frames of traceback."""

    type: str
    message: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


def describe_error(exc: BaseException) -> ErrorInfo:
    """Summarize an exception for a dead letter (the innermost frames are kept)."""
    text = "".join(traceback.format_exception(exc, limit=-5))
    return ErrorInfo(type(exc).__qualname__, str(exc), text[-TRACEBACK_LIMIT:])


def dead_letter_fields(error: ErrorInfo, consumer: str, failed_at_ms: int) -> list[str]:
    """Error fields of a dead-letter entry (the script adds the pointer and deliveries)."""
    return [
        "error_type",
        error.type,
        "error",
        error.message,
        "traceback",
        error.traceback,
        "consumer",
        consumer,
        "failed_at",
        str(failed_at_ms),
    ]


@attrs.frozen
class DeadLetter:
    """An event a group gave up on after ``deliveries`` attempts.

    ``recorded`` is the event itself, or ``None`` when it cannot be read back (its stored
    data is bad, or the log entry that pointed to it was malformed): ``unreadable`` then
    says why, naming the key at fault. ``error`` is the last failure (``str(error)`` reads
    ``"Type: message"``, ``error.traceback`` has the frames); ``consumer`` the worker
    that parked it. ``id`` names it for ``ConsumerGroup.dead_letter``, ``replay_dead_letters``
    and ``discard_dead_letters``.
    """

    id: str
    recorded: RecordedEvent | None
    error: ErrorInfo
    deliveries: int
    consumer: str
    failed_at: datetime
    partition: int = attrs.field(kw_only=True)
    """The partition whose log (or retry stream) the entry came from."""
    unreadable: str | None = attrs.field(default=None, kw_only=True)
    """Why ``recorded`` is ``None``: the error reading the event (or its pointer) gave."""


def dead_letter_id(partition: int, entry_id: str) -> str:
    """The public id of a dead letter: ``<partition>:<entry id in the dead-letter stream>``."""
    return f"{partition}:{entry_id}"


def split_dead_letter_id(value: str) -> tuple[int, str]:
    """Inverse of ``dead_letter_id`` (``ValueError`` for anything else)."""
    partition, sep, entry_id = value.partition(":")
    if not sep or not partition.isdigit() or not entry_id:
        raise ValueError(f"not a dead letter id: {value!r} (expected '<partition>:<entry id>')")
    return int(partition), entry_id


def dead_letter_pointer(
    schema: KeySchema, partition: int, key: str, entry: tuple[bytes, Mapping[bytes, bytes]]
) -> Pointer:
    """The pointer stored in a dead-letter entry."""
    return pointer_from_fields(schema, partition, key, _text(entry[0]), entry[1])


def parse_dead_letter(
    partition: int,
    entry: tuple[bytes, Mapping[bytes, bytes]],
    recorded: RecordedEvent | None,
    unreadable: str | None = None,
) -> DeadLetter:
    """Build the ``DeadLetter`` of a dead-letter entry, with its event if it was resolved
    (``unreadable``: why it was not)."""
    entry_id, fields = _text(entry[0]), entry[1]

    def get(name: str) -> str:
        return _text(fields.get(name.encode(), b""))

    error = ErrorInfo(get("error_type"), get("error"), get("traceback"))
    failed_at = datetime.fromtimestamp(int(get("failed_at") or 0) / 1000, tz=UTC)
    return DeadLetter(
        dead_letter_id(partition, entry_id),
        recorded,
        error,
        int(get("deliveries") or 0),
        get("consumer"),
        failed_at,
        partition=partition,
        unreadable=unreadable,
    )


# -- trimming ----------------------------------------------------------------------------


@attrs.frozen
class TrimResult:
    """What ``EventStore.trim_log`` did to one partition log.

    ``safe_point``: the lowest position some group or registered checkpoint still needs
    (entries below it may go); ``trimmed_to``: entries below this position are gone now
    (never above ``safe_point``); ``removed``: how many entries this call removed.
    """

    partition: int
    safe_point: int
    trimmed_to: int
    removed: int


def parse_trim_reply(partition: int, reply: Sequence[Any]) -> TrimResult:
    """Parse ``trim.lua``'s ``{safe point, trimmed to, removed}``."""
    return TrimResult(partition, int(reply[0]), int(reply[1]), int(reply[2]))
