"""Every hypothesis strategy of the test suite, in one place.

Event classes needed only to give generated payloads a shape live here too (their type
names start with ``Gen`` so they never clash with another test module's events).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel

from aggregates import DomainEvent
from eventstore import ErrorInfo, ProjectionFailure
from eventstore._core.notifications import LiveSelection
from tests.domain import Deposited, Opened, Tagged, Withdrawn

__all__ = [
    "GenAddress",
    "GenRichEvent",
    "account_commands",
    "account_events",
    "aggregate_ids",
    "amounts",
    "batches",
    "json_objects",
    "live_notes",
    "live_selections",
    "projection_failures",
    "rich_events",
    "writer_plans",
]


class GenAddress(BaseModel):
    """A nested model inside an event payload."""

    street: str
    number: int
    tags: list[str] = []


class GenRichEvent(DomainEvent):
    """One field of each JSON-relevant kind, to round-trip through the codec and Redis."""

    text: str
    count: int
    ratio: float
    at: datetime
    address: GenAddress
    items: list[int]
    extra: dict[str, str]
    maybe: str | None = None


# -- scalars ------------------------------------------------------------------------------

texts = st.text(max_size=30)  # any code point except surrogates: unicode, NUL, emoji
amounts = st.integers(min_value=1, max_value=1_000)
# arbitrary-size ints: JSON has no limit and neither does Python (Lua only validates)
big_ints = st.integers(min_value=-(2**70), max_value=2**70)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
_offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
datetimes = st.one_of(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    st.datetimes(
        min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1), timezones=_offsets
    ),
)
aggregate_ids = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12)

# -- events -------------------------------------------------------------------------------

addresses = st.builds(GenAddress, street=texts, number=big_ints, tags=st.lists(texts, max_size=3))
rich_events = st.builds(
    GenRichEvent,
    text=texts,
    count=big_ints,
    ratio=finite_floats,
    at=datetimes,
    address=addresses,
    items=st.lists(big_ints, max_size=5),
    extra=st.dictionaries(texts, texts, max_size=4),
    maybe=st.none() | texts,
)

_json_scalars = st.none() | st.booleans() | big_ints | finite_floats | texts
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    texts,
    st.recursive(
        _json_scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
        max_leaves=8,
    ),
    max_size=4,
)
"""JSON objects as user metadata: nested lists and dicts of JSON scalars."""

account_events: st.SearchStrategy[DomainEvent] = st.one_of(
    st.builds(Deposited, amount=amounts),
    st.builds(Withdrawn, amount=amounts),
    st.builds(Opened, owner=texts),
    st.builds(Tagged, tags=st.lists(texts, max_size=3)),
)
"""Events of the bank Account domain (no business rule checked: projectors only)."""

batches = st.lists(st.lists(account_events, min_size=1, max_size=6), min_size=1, max_size=8)
"""A history cut into save batches: each inner list is saved at once."""

# -- commands and plans -------------------------------------------------------------------

account_commands = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), amounts), min_size=1, max_size=6
)
"""One writer's deposits: (aggregate id among a few shared ones, amount)."""

writer_plans = st.lists(account_commands, min_size=2, max_size=4)
"""Several concurrent writers, each with its own deposits on shared aggregates."""

# -- projections --------------------------------------------------------------------------

_names = st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True)
_naturals = st.integers(min_value=0, max_value=2**53)
_millis = st.integers(min_value=0, max_value=7_258_118_400_000)  # 1970..2200

projection_failures = st.builds(
    ProjectionFailure,
    projection=_names,
    projection_version=st.integers(min_value=1, max_value=1_000),
    error=st.builds(ErrorInfo, type=_names, message=texts, traceback=texts),
    event_type=_names,
    stream=texts,
    version=_naturals,
    partition=st.integers(min_value=0, max_value=1_023),
    position=_naturals,
    failed_at=_millis.map(lambda ms: datetime.fromtimestamp(ms / 1000, tz=UTC)),
)
"""A projection's last failure as ``Projection.last_error`` returns it (ms precision)."""

# -- live notifications -------------------------------------------------------------------

names = _names
"""Namespace, aggregate type and group names, as ``validate_name`` accepts them."""


def _some(values: list[str]) -> st.SearchStrategy[frozenset[str] | None]:
    return st.none() | st.frozensets(st.sampled_from(values), max_size=len(values))


LIVE_TYPES, LIVE_EVENT_TYPES, LIVE_IDS = ["A", "B", "C"], ["E", "F"], ["x", "y", "z"]

live_selections = st.builds(
    LiveSelection, _some(LIVE_TYPES), _some(LIVE_EVENT_TYPES), _some(LIVE_IDS)
)
"""What a live feed keeps, over a few types, event types and ids (so feeds overlap)."""

live_notes = st.tuples(
    st.sampled_from(LIVE_TYPES), st.sampled_from(LIVE_IDS), st.sampled_from(LIVE_EVENT_TYPES)
)
"""An appended event as (aggregate type, aggregate id, event type), over the same names."""
