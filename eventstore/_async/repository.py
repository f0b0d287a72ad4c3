# unasync: generates the sync module of the same name
"""``Repository``: save aggregates as atomic appends and load them in one round trip."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from aggregates import Aggregate, AggregateError, DomainEvent, MissingProjector
from eventstore._async.store import AsyncEventStore, Durability
from eventstore._core.codec import encode_batch, now_ms
from eventstore._core.errors import (
    AggregateNotFound,
    SnapshotError,
    StoredDataError,
)
from eventstore._core.expected import ExpectedVersion
from eventstore._core.records import AppendResult, Snapshot
from eventstore._core.scripts import LoadReply

__all__ = ["AsyncRepository"]

A = TypeVar("A", bound=Aggregate)


class AsyncRepository(Generic[A]):
    """Saves and loads aggregates of one class.

    ::

        accounts = AsyncRepository(store, Account, snapshot_every=100)
        await accounts.save(account)            # one atomic append, expected version checked
        account = await accounts.get("acc-1")   # snapshot + later events, one round trip

    With ``snapshot_every=N`` a snapshot is written, inside the same script call as the
    events, whenever a save crosses a multiple of N versions.
    """

    def __init__(
        self, store: AsyncEventStore, aggregate_class: type[A], snapshot_every: int | None = None
    ) -> None:
        if snapshot_every is not None and snapshot_every < 1:
            raise ValueError(f"snapshot_every must be >= 1 or None, got {snapshot_every}")
        self.store = store
        self.aggregate_class = aggregate_class
        self.snapshot_every = snapshot_every

    @property
    def aggregate_type(self) -> str:
        return self.aggregate_class.aggregate_type

    async def save(
        self,
        aggregate: A,
        *,
        metadata: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        durability: Durability | None = None,
    ) -> AppendResult | None:
        """Append the aggregate's pending events, expecting its committed version.

        Raises ``ConcurrencyError`` if another writer got there first: reload and retry.
        Saving again after a lost reply is safe (same event ids). Returns ``None`` when
        there was nothing to save. ``durability`` overrides the store's policy for this
        save (``None``: the store's).
        """
        if not isinstance(aggregate, self.aggregate_class):
            raise TypeError(
                f"this repository saves {self.aggregate_type}, not {type(aggregate).__name__}"
            )
        if not aggregate.pending_events:
            return None
        events = encode_batch(
            self.store.keys.stream(self.aggregate_type, aggregate.id),
            aggregate.pending_events,
            event_ids=aggregate.pending_event_ids,
            timestamps_ms=aggregate.pending_event_times,
            metadata=metadata,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        expected = aggregate.committed_version or ExpectedVersion.NO_STREAM
        result = await self.store.append_encoded(
            self.aggregate_type,
            aggregate.id,
            events,
            expected,
            snapshot=self._snapshot_due(aggregate),
            durability=durability,
        )
        aggregate.mark_committed()
        return result

    async def get(self, id: str, version: int | None = None, *, use_snapshot: bool = True) -> A:  # noqa: A002
        """The aggregate as of ``version`` (latest if ``None``).

        Raises ``AggregateNotFound`` if it has no events (or fewer than ``version``), and a
        ``StoredDataError`` naming the stream, version and field for bad stored data.
        """
        if version is not None and version < 1:
            raise ValueError(f"version must be >= 1, got {version}")
        fingerprint = self.aggregate_class.schema_fingerprint() if use_snapshot else ""
        # the tail after a snapshot is shorter than snapshot_every plus the last batch
        window = 256 if not (use_snapshot and self.snapshot_every) else self.snapshot_every + 32
        loaded = await self.store.load(
            self.aggregate_type,
            id,
            fingerprint=fingerprint,
            version=version,
            window=window,
            records=False,
        )
        if loaded.current_version == 0:
            raise AggregateNotFound(self.aggregate_type, id)
        if version is not None and version > loaded.current_version:
            raise AggregateNotFound(self.aggregate_type, id, version)
        return self.rebuild(id, loaded)

    async def get_or_none(self, id: str, version: int | None = None) -> A | None:  # noqa: A002
        """Like ``get``, but ``None`` instead of ``AggregateNotFound``."""
        try:
            return await self.get(id, version)
        except AggregateNotFound:
            return None

    async def take_snapshot(self, id: str) -> Snapshot:  # noqa: A002
        """Write a snapshot of the aggregate's current state (outside any save)."""
        aggregate = await self.get(id)
        snapshot = self._snapshot_of(aggregate)
        await self.store.write_snapshot(self.aggregate_type, id, snapshot)
        return snapshot

    def rebuild(self, id: str, loaded: LoadReply) -> A:  # noqa: A002
        """Build the aggregate from a load reply: snapshot state, then each tail event."""
        stream = self.store.keys.stream(self.aggregate_type, id)
        if loaded.snapshot is not None:
            aggregate = self._from_snapshot(id, loaded.snapshot)
        else:
            aggregate = self.aggregate_class(id=id)
        for recorded in loaded.events:
            self._apply(stream, aggregate, recorded.version, recorded.event)
        for version, event in loaded.typed:
            self._apply(stream, aggregate, version, event)
        return aggregate

    def _from_snapshot(self, id: str, snapshot: Snapshot) -> A:  # noqa: A002
        try:
            return self.aggregate_class.from_state(id, snapshot.version, snapshot.state)
        except AggregateError as exc:
            key = self.store.keys.snapshot(self.aggregate_type, id)
            field = getattr(exc, "field", "s")
            raise SnapshotError(key, snapshot.version, f"s.{field}", str(exc)) from exc

    def _apply(self, stream: str, aggregate: A, version: int, event: DomainEvent) -> None:
        if version != aggregate.version + 1:
            expected = aggregate.version + 1
            reason = f"expected version {expected} (a gap in the stream)"
            raise StoredDataError(stream, version, "id", reason)
        try:
            aggregate.apply(event)
        except MissingProjector as exc:
            raise StoredDataError(stream, version, "t", str(exc)) from exc

    def _snapshot_due(self, aggregate: A) -> Snapshot | None:
        every = self.snapshot_every
        if not every or aggregate.version // every == aggregate.committed_version // every:
            return None
        return self._snapshot_of(aggregate)

    def _snapshot_of(self, aggregate: A) -> Snapshot:
        return Snapshot(
            aggregate.version,
            self.aggregate_class.schema_fingerprint(),
            aggregate.state_as_json(),
            now_ms(),
        )
