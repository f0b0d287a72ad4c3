"""``Checkpoint``: where a reader is in every partition log, as a value users can store.

A checkpoint holds one position per partition: the last position a reader has handled
(delivered, or skipped by its filters). Reading ``after`` it resumes with the next event
of each partition, so nothing is missed and nothing is delivered twice.

It round-trips through a short string (``"12"`` with one partition, ``"12,0,7"`` with
three) so it can live in a database column, a file or a Redis key::

    saved = str(subscription.checkpoint)           # "12,0,7"
    store.subscribe(after=Checkpoint.parse(saved))  # or simply after=saved
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import attrs

__all__ = ["FROM_NOW", "After", "Checkpoint"]

FROM_NOW: Final = "now"
"""Pass as ``after=`` to start at the current end of every log (only new events)."""


def _positions(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _check_positions(_inst: object, _attr: object, value: tuple[int, ...]) -> None:
    if not value:
        raise ValueError("a checkpoint needs at least one partition")
    for partition, position in enumerate(value):
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError(
                f"partition {partition}: position must be an int >= 0, got {position!r}"
            )


@attrs.frozen
class Checkpoint:
    """The last handled position of each partition (0 = nothing handled yet).

    ``Checkpoint((12, 0, 7))`` means partition 0 is handled up to position 12, partition 1
    not at all, partition 2 up to 7.
    """

    positions: tuple[int, ...] = attrs.field(converter=_positions, validator=_check_positions)

    @classmethod
    def start(cls, partitions: int) -> Checkpoint:
        """The checkpoint before the first event of every partition."""
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        return cls((0,) * partitions)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read the form ``str(checkpoint)`` writes: positions joined by commas."""
        parts = text.strip().split(",")
        if not all(part.strip().isdigit() for part in parts):
            raise ValueError(f"not a checkpoint: {text!r} (expected e.g. '12' or '12,0,7')")
        return cls(tuple(int(part) for part in parts))

    @classmethod
    def coerce(cls, after: After, partitions: int) -> Checkpoint:
        """Turn what ``after=`` accepts into a checkpoint of ``partitions`` partitions.

        ``None`` is the beginning; an ``int`` is accepted for a single partition only (with
        several, one number cannot say where each log is); strings are parsed. ``FROM_NOW``
        is resolved by the store, which knows the current ends of the logs.
        """
        if after is None:
            return cls.start(partitions)
        if isinstance(after, Checkpoint):
            checkpoint = after
        elif isinstance(after, bool):
            raise TypeError(f"after= cannot be a bool ({after!r})")
        elif isinstance(after, int):
            if partitions != 1:
                raise ValueError(
                    f"after={after} is a single position but the store has {partitions} "
                    "partitions: pass a Checkpoint (one position per partition)"
                )
            checkpoint = cls((after,))
        elif isinstance(after, str):
            checkpoint = cls.parse(after)
        else:
            raise TypeError(f"after= must be None, an int, a str or a Checkpoint, not {after!r}")
        if checkpoint.partitions != partitions:
            raise ValueError(
                f"checkpoint {checkpoint} has {checkpoint.partitions} partitions, "
                f"the store has {partitions}"
            )
        return checkpoint

    @property
    def partitions(self) -> int:
        """How many partitions the checkpoint covers."""
        return len(self.positions)

    @property
    def total(self) -> int:
        """The sum of the positions: how many log entries lie behind this checkpoint."""
        return sum(self.positions)

    def position(self, partition: int) -> int:
        """The last handled position of ``partition``."""
        return self.positions[partition]

    def advance(self, partition: int, position: int) -> Checkpoint:
        """A copy with ``partition`` moved to ``position`` (never backwards)."""
        if position <= self.positions[partition]:
            return self
        moved = list(self.positions)
        moved[partition] = position
        return Checkpoint(tuple(moved))

    def __str__(self) -> str:
        return ",".join(str(position) for position in self.positions)


After = Checkpoint | int | str | None
"""What ``after=`` accepts: a ``Checkpoint``, its string form, a position (one partition),
``None`` (the beginning) or ``FROM_NOW``."""
