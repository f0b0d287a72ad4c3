"""Integrity checks as pure functions over data fetched from Redis (used by ``verify``).

Each check returns ``Problem`` records naming the key at fault; the command decides
what to fetch and in which pages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from eventstore._core.codec import decode_fields
from eventstore._core.errors import StoredDataError, UnknownEventType
from eventstore._core.keys import KeySchema
from eventstore._core.log import Pointer, ResolveCall
from eventstore._core.records import Snapshot

__all__ = [
    "KeyKind",
    "Problem",
    "check_entry",
    "check_ids",
    "check_pointers",
    "check_position_counter",
    "check_snapshot",
    "classify_key",
    "entry_fields",
    "position_of",
]

Fields = Mapping[bytes, bytes]


@attrs.frozen
class Problem:
    """One integrity problem: its kind, the key at fault, and what is wrong."""

    kind: str
    key: str
    detail: str

    def as_json(self) -> dict[str, str]:
        """The documented ``{"kind", "key", "detail"}`` shape."""
        return {"kind": self.kind, "key": self.key, "detail": self.detail}


@attrs.frozen
class KeyKind:
    """What a key of the namespace is: ``kind`` plus its partition, type and id if any."""

    kind: str
    partition: int | None = None
    aggregate_type: str = ""
    aggregate_id: str = ""


def entry_fields(raw: Any) -> dict[bytes, bytes]:
    """Stream entry fields as a dict, whether the reply was a dict or a flat list (Lua)."""
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True))


def position_of(entry_id: bytes | str) -> int | None:
    """The number in a ``0-<n>`` entry id (a version or a position), else ``None``."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, sep, seq = text.partition("-")
    if ms != "0" or not sep or not seq.isdigit():
        return None
    return int(seq)


def _missing(what: str, first: int, last: int) -> str:
    if first == last:
        return f"{what} {first} is missing"
    return f"{what}s {first}..{last} are missing"


def check_ids(
    key: str, entry_ids: Sequence[bytes | str], last: int, what: str
) -> tuple[list[Problem], int]:
    """Entry ids must be ``0-<n>`` with n contiguous after ``last`` (versions or positions).

    Returns the problems and the last number seen, to check the next page against.
    """
    problems = []
    for entry_id in entry_ids:
        number = position_of(entry_id)
        if number is None:
            shown = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            problems.append(Problem("bad-entry-id", key, f"entry id {shown} is not 0-<{what}>"))
            continue
        if number != last + 1:
            problems.append(Problem("gap", key, _missing(what, last + 1, number - 1)))
        last = number
    return problems, last


def check_entry(key: str, entry_id: bytes, fields: Fields, partition: int) -> list[Problem]:
    """An aggregate stream entry must decode; an unknown type must at least hold a JSON object.

    Returns the problems; an event type no class is registered for is not a problem
    (``verify`` reports such types as not checked).
    """
    try:
        decode_fields(
            key, entry_id, fields, aggregate_type="", aggregate_id="", partition=partition
        )
    except UnknownEventType:
        return _check_raw_payload(key, entry_id, fields)
    except StoredDataError as exc:
        return [
            Problem("bad-payload", key, f"version {exc.version} field {exc.field}: {exc.reason}")
        ]
    return []


def _check_raw_payload(key: str, entry_id: bytes, fields: Fields) -> list[Problem]:
    version = position_of(entry_id)
    try:
        data = json.loads(fields.get(b"d", b""))
    except json.JSONDecodeError as exc:
        return [Problem("bad-payload", key, f"version {version} field d: invalid JSON: {exc}")]
    if not isinstance(data, dict):
        return [Problem("bad-payload", key, f"version {version} field d: not a JSON object")]
    return []


def check_pointers(log_key: str, call: ResolveCall, reply: Sequence[Any]) -> list[Problem]:
    """Every log pointer must resolve to an event of its type that records its position."""
    problems = []
    for run, entries in zip(call.runs, reply, strict=True):
        found = {position_of(entry_id): entry_fields(raw) for entry_id, raw in entries}
        for pointer in run:
            fields = found.get(pointer.version)
            if fields is None:
                problems.append(
                    Problem(
                        "dangling-pointer",
                        log_key,
                        f"position {pointer.position} points at {pointer.stream} "
                        f"version {pointer.version}, which does not exist",
                    )
                )
            else:
                problems += _pointer_mismatch(log_key, pointer, fields)
    return problems


def _pointer_mismatch(log_key: str, pointer: Pointer, fields: Fields) -> list[Problem]:
    stored_type = fields.get(b"t", b"").decode(errors="replace")
    stored_position = fields.get(b"p", b"").decode(errors="replace")
    where = f"position {pointer.position} -> {pointer.stream} version {pointer.version}"
    if stored_type != pointer.event_type:
        detail = f"{where}: log says type {pointer.event_type}, the event is {stored_type}"
        return [Problem("pointer-mismatch", log_key, detail)]
    if stored_position != str(pointer.position):
        detail = f"{where}: the event records position {stored_position or '(none)'}"
        return [Problem("pointer-mismatch", log_key, detail)]
    return []


def check_position_counter(pos_key: str, counter: int, last_logged: int) -> list[Problem]:
    """The partition's position counter must equal the last position in its log."""
    if counter == last_logged:
        return []
    detail = f"counter is {counter} but the log's last position is {last_logged}"
    return [Problem("position-counter", pos_key, detail)]


def check_snapshot(
    key: str,
    snapshot: Snapshot,
    stream_version: int,
    fingerprint: str | None,
    replayed_state: Mapping[str, Any] | None,
) -> list[Problem]:
    """A snapshot must not be beyond its stream and must equal a replay to its version.

    ``fingerprint`` and ``replayed_state`` are ``None`` when the aggregate class is not
    known (no ``--app``): only the version is checked then. A snapshot of another shape
    (other fingerprint) is ignored by loads, so it is not compared.
    """
    if snapshot.version > stream_version:
        detail = f"snapshot version {snapshot.version} is beyond the stream's {stream_version}"
        return [Problem("snapshot-beyond-stream", key, detail)]
    if fingerprint is None or snapshot.fingerprint != fingerprint or replayed_state is None:
        return []
    differing = sorted(
        name
        for name in set(snapshot.state) | set(replayed_state)
        if snapshot.state.get(name) != replayed_state.get(name)
    )
    if not differing:
        return []
    name = differing[0]
    detail = (
        f"at version {snapshot.version} field {name!r} is {snapshot.state.get(name)!r} "
        f"in the snapshot but {replayed_state.get(name)!r} by replay"
    )
    return [Problem("stale-snapshot", key, detail)]


_PARTITION_KINDS = {"log", "pos", "types", "ckpt"}
_PARTITION_PREFIXES = ("ix:", "dlq:", "retry:")
# namespace-level keys of a projection version: <ns>:<prefix>:<name>:v<version>[...]
_NAMESPACE_PREFIXES = {
    "rm": "read-model", "lease": "projection-lease", "error": "projection-error",
}  # fmt: skip


_TAGGED_PROJECTION_KEYS = {
    "#lease": "projection-lease", "#error": "projection-error", "#ckpt": "projection-checkpoints",
}  # fmt: skip
"""The suffixes of a projection version's own keys on a cluster, after its hash tag."""


def classify_key(schema: KeySchema, key: str) -> KeyKind | None:
    """What ``key`` is in ``schema``, or ``None`` if the key schema has no such key."""
    if key.startswith(f"{{{schema.namespace}:rm:"):
        return _tagged_projection_key(key)
    if key.startswith("{"):
        return _partition_key(schema, key)
    if key == schema.meta:
        return KeyKind("meta")
    if key == schema.projections:
        return KeyKind("projections")
    kind, _, rest = key.removeprefix(f"{schema.namespace}:").partition(":")
    if key.startswith(f"{schema.namespace}:") and kind in _NAMESPACE_PREFIXES and ":v" in rest:
        return KeyKind(_NAMESPACE_PREFIXES[kind])
    return None


def _tagged_projection_key(key: str) -> KeyKind | None:
    # {<ns>:rm:<name>:v<version>} then #lease, #error, #ckpt, or a model key's :<parts>
    tag_end = key.find("}")
    if tag_end < 0 or ":v" not in key[:tag_end]:
        return None
    rest = key[tag_end + 1 :]
    if rest in _TAGGED_PROJECTION_KEYS:
        return KeyKind(_TAGGED_PROJECTION_KEYS[rest])
    return KeyKind("read-model") if rest == "" or rest.startswith(":") else None


def _partition_key(schema: KeySchema, key: str) -> KeyKind | None:
    prefix = f"{{{schema.namespace}:p"
    tag_end = key.find("}:")
    number = key[len(prefix) : tag_end]
    if not key.startswith(prefix) or tag_end < 0 or not number.isdigit():
        return None
    partition, rest = int(number), key[tag_end + 2 :]
    if partition >= schema.partitions:
        return None
    return _in_partition(schema, partition, rest)


def _in_partition(schema: KeySchema, partition: int, rest: str) -> KeyKind | None:
    if rest in _PARTITION_KINDS:
        return KeyKind(rest, partition)
    kind, _, name = rest.partition(":")
    if f"{kind}:" in _PARTITION_PREFIXES and name:
        return KeyKind(kind, partition, name)
    aggregate_type, sep, aggregate_id = name.partition(":")
    if kind not in {"a", "s"} or not (sep and aggregate_type and aggregate_id):
        return None
    if schema.partition_of(aggregate_id) != partition:
        return KeyKind("misplaced", partition, aggregate_type, aggregate_id)
    return KeyKind("stream" if kind == "a" else "snapshot", partition, aggregate_type, aggregate_id)
