"""Size limits of an append, checked before anything is sent.

Redis itself takes a bulk string of up to 512 MB (``proto-max-bulk-len``), but a big event
costs on every read: a load returns every event after the snapshot in one script reply,
a log page resolves up to 1000 events in one reply, and a Lua script blocks the whole
server while it copies its arguments. The defaults keep one append well under a
millisecond's worth of server time per MiB and a page of reads bounded:

* ``max_event_bytes = 1 MiB``: the data plus metadata JSON of one event (Kafka's
  default ``message.max.bytes`` is the same order). Events are facts, typically 100 B
  to a few KiB; a blob belongs in an object store, with its address in the event.
* ``max_batch_events = 1000``: the events of one append (one script call with
  ``8 * n + 11`` arguments, all in memory at once on both sides).
* ``max_batch_bytes = 16 MiB``: the data plus metadata of one append, so a batch of
  1000 events of up to 16 KiB each (or 16 of the largest) passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from eventstore._core.errors import BatchTooLarge, ConfigurationError, EventTooLarge
from eventstore._core.records import NewEvent

__all__ = ["DEFAULT_LIMITS", "Limits", "check_batch", "encoded_size"]

_MIB = 1024 * 1024


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"Limits.{attribute.name} must be an int >= 1, got {value!r}")


@attrs.frozen
class Limits:
    """How big one event and one append may be (see the module docstring for why).

    ::

        EventStore.from_url(url, limits=Limits(max_event_bytes=64 * 1024))
    """

    max_event_bytes: int = attrs.field(default=_MIB, validator=_positive)
    max_batch_events: int = attrs.field(default=1000, validator=_positive)
    max_batch_bytes: int = attrs.field(default=16 * _MIB, validator=_positive)


DEFAULT_LIMITS = Limits()


def encoded_size(text: str) -> int:
    """The UTF-8 size of ``text`` in bytes; O(1) for ASCII (CPython knows it is ASCII)."""
    return len(text) if text.isascii() else len(text.encode())


def check_batch(stream: str, events: Sequence[NewEvent], limits: Limits) -> None:
    """Raise ``BatchTooLarge`` or ``EventTooLarge`` (naming the event) if over a limit."""
    if len(events) > limits.max_batch_events:
        raise BatchTooLarge(stream, "events", len(events), limits.max_batch_events)
    total = 0
    max_event = limits.max_event_bytes
    for index, event in enumerate(events, start=1):
        size = encoded_size(event.data) + encoded_size(event.metadata)
        if size > max_event:
            raise EventTooLarge(stream, index, event.event_type, size, max_event)
        total += size
    if total > limits.max_batch_bytes:
        raise BatchTooLarge(stream, "bytes", total, limits.max_batch_bytes)
