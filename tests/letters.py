"""Dead letters in tests: the event of a letter that must be readable."""

from __future__ import annotations

from eventstore import RecordedEvent
from eventstore._core.groups import DeadLetter

__all__ = ["event_of"]


def event_of(letter: DeadLetter) -> RecordedEvent:
    """``letter.recorded``, failing the test if the letter is unreadable."""
    assert letter.recorded is not None, letter.unreadable
    return letter.recorded
