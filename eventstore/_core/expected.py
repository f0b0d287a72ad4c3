"""Expected versions for an append: exact, no stream, any, or exists."""

from __future__ import annotations

import enum

__all__ = ["ExpectedVersion", "expected_arg"]


class ExpectedVersion(enum.Enum):
    """Non-numeric expectations; an ``int`` means "the stream is exactly at this version".

    ``NO_STREAM``: the aggregate must not exist yet. ``ANY``: append wherever the stream
    is. ``EXISTS``: the aggregate must have at least one event.
    """

    ANY = "any"
    NO_STREAM = "none"
    EXISTS = "exists"


def expected_arg(expected: int | ExpectedVersion) -> str:
    """The script argument for an expectation (``0`` means the same as ``NO_STREAM``)."""
    if isinstance(expected, ExpectedVersion):
        return expected.value
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ValueError(
            f"expected_version must be an int >= 0 or an ExpectedVersion, got {expected!r}"
        )
    return str(expected)
