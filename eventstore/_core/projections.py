"""A projection's last failure as stored in Redis: its hash fields, and the typed record.

When a handler (or a read model write) fails, the projection stops with a
``ProjectionError`` in the process that ran it. The same facts go to the hash
``<ns>:error:<name>:v<version>`` so that other processes (``eventstore projections
status``) see why a projection stands still. Building the fields and parsing them back
needs no I/O, so it lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import attrs

from eventstore._core.errors import ProjectionError, StoredDataError
from eventstore._core.groups import ErrorInfo

__all__ = ["ProjectionFailure", "failure_fields", "parse_failure"]

_FIELDS = ("error_type", "error", "traceback", "event_type", "stream", "version",
           "partition", "position", "failed_at")  # fmt: skip
_NUMBERS = ("version", "partition", "position", "failed_at")


@attrs.frozen
class ProjectionFailure:
    """Why a projection version stopped: the error and the event it failed on.

    ``error`` is the original exception (``str(error)`` reads ``"Type: message"``,
    ``error.traceback`` has the frames); ``stream``, ``version``, ``partition`` and
    ``position`` name the event, which was not skipped: the projection handles it again
    after the fix, and the record is cleared once it commits past ``position``.
    """

    projection: str
    projection_version: int
    error: ErrorInfo
    event_type: str
    stream: str
    version: int
    partition: int
    position: int
    failed_at: datetime

    def __str__(self) -> str:
        return (
            f"{self.error} at {self.event_type} {self.stream} version {self.version} "
            f"(partition {self.partition}, position {self.position})"
        )


def failure_fields(error: ProjectionError, info: ErrorInfo, failed_at_ms: int) -> dict[str, str]:
    """The hash fields recording ``error`` (caused by the exception ``info`` describes)."""
    values = (info.type, info.message, info.traceback, error.event_type, error.stream,
              error.version, error.partition, error.position, failed_at_ms)  # fmt: skip
    return {name: str(value) for name, value in zip(_FIELDS, values, strict=True)}


def parse_failure(
    key: str, projection: str, projection_version: int, fields: Mapping[bytes, bytes]
) -> ProjectionFailure | None:
    """The failure recorded in hash ``key`` (``None`` when it is empty or absent).

    Raises ``StoredDataError`` naming the field when the hash was not written by us.
    """
    if not fields:
        return None
    text = {name: fields.get(name.encode(), b"").decode() for name in _FIELDS}
    for name in _NUMBERS:
        if not (text[name].isascii() and text[name].isdigit()):
            raise StoredDataError(key, 0, name, f"expected an integer, got {text[name]!r}")
    return ProjectionFailure(
        projection=projection,
        projection_version=projection_version,
        error=ErrorInfo(text["error_type"], text["error"], text["traceback"]),
        event_type=text["event_type"],
        stream=text["stream"],
        version=int(text["version"]),
        partition=int(text["partition"]),
        position=int(text["position"]),
        failed_at=datetime.fromtimestamp(int(text["failed_at"]) / 1000, tz=UTC),
    )
