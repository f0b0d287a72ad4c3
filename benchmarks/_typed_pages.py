"""The least any typed catch-up over our log does, without its I/O.

Workload 7's ceiling (redis-py) and workload 11's (redis.asyncio) drive the same pages:
per page, a raw XRANGE of the partition log, one XREAD of the events its pointers name
(each stream from its first version in the page), and pydantic's own validator on each
event's payload; no checks, no ``RecordedEvent``. Both write the next page's two reads
before they validate the current page, as our catch-up does.

Replies are raw (no redis-py callbacks): an entry's fields are the flat list the append
script wrote, ``[b"t", type, b"s", schema, ..., b"d", data]`` for an event (``d`` at
index 10, the data at 11, as ``append.lua`` lays it out) and ``[b"k", b"<type>:<id>",
b"v", version, b"t", type]`` for a pointer.
"""

from __future__ import annotations

from typing import Any

from benchmarks._domain import BenchDeposited, BenchOpened

__all__ = ["Spans", "TypedPages"]

Spans = dict[bytes, list[int]]
"""Stream key -> [first, last] version a page wants of it."""


class TypedPages:
    """The commands of each page of ``log`` and the validation of a page's events.

    ``stream_prefix`` is the stream key of a pointer's ``<type>:<id>`` less that suffix.
    """

    def __init__(self, log: str, stream_prefix: str, page_size: int) -> None:
        self.log = log
        self.page_size = page_size
        self._prefix = stream_prefix.encode()
        self._validators = {
            cls.event_type.encode(): cls.__pydantic_validator__
            for cls in (BenchOpened, BenchDeposited)
        }

    def log_page(self, after: int) -> tuple[Any, ...]:
        """The XRANGE of the log page after position ``after``."""
        return ("XRANGE", self.log, f"(0-{after}", "+", "COUNT", self.page_size)

    def next_reads(self, page: list[Any]) -> tuple[list[tuple[Any, ...]], Spans, bool]:
        """What to write after log ``page``: its events' XREAD, and the next log page's
        XRANGE if there may be one; the spans to validate, and whether there is more."""
        command, spans = self._events_read(page)
        more = len(page) == self.page_size
        commands = [command, self.log_page(int(page[-1][0][2:]))] if more else [command]
        return commands, spans, more

    def _events_read(self, page: list[Any]) -> tuple[tuple[Any, ...], Spans]:
        spans: Spans = {}
        for _, pointer in page:
            version = int(pointer[3])
            key = self._prefix + pointer[1]  # pointers name <type>:<id> in the log's partition
            span = spans.get(key)
            if span is None:
                spans[key] = [version, version]
            else:
                span[1] = version
        count = max(last - first for first, last in spans.values()) + 1
        starts = [b"0-%d" % (first - 1) for first, _ in spans.values()]
        return ("XREAD", "COUNT", count, "STREAMS", *spans, *starts), spans

    def validate(self, reply: Any, spans: Spans) -> int:
        """Validate the page's events of an XREAD reply (RESP2 or RESP3); how many."""
        seen, validators = 0, self._validators
        for key, entries in reply.items() if isinstance(reply, dict) else reply:
            first, last = spans[key]
            for _, fields in entries[: last - first + 1]:  # the page's events only
                validators[fields[1]].validate_json(fields[11])
            seen += min(len(entries), last - first + 1)
        return seen
