"""A projection's last failure, recorded in Redis for other processes until it gets past it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings

from eventstore import (
    EventStore,
    Projection,
    ProjectionContext,
    ProjectionError,
    ProjectionFailure,
    StoredDataError,
)
from eventstore._core.groups import ErrorInfo
from eventstore._core.projections import failure_fields, parse_failure
from tests.domain import Deposited, Opened
from tests.strategies import projection_failures

FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def strict(store: EventStore, refused: set[int]) -> Projection:
    """Appends each deposit to a list; raises on the amounts in ``refused``."""
    projection = Projection(store, "strict")

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        if event.amount in refused:
            raise ValueError(f"{event.amount} is not allowed")
        ctx.pipe.rpush(ctx.key("amounts"), event.amount)

    return projection


def _deposits(store: EventStore, *amounts: int) -> None:
    store.append("Account", "a1", [Opened(owner="x"), *(Deposited(amount=a) for a in amounts)], 0)


def test_a_failure_is_recorded_then_cleared_once_the_projection_gets_past_it(
    store: EventStore,
) -> None:
    _deposits(store, 1, 2, 3)  # positions 2, 3, 4
    before = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(ProjectionError):
        strict(store, {2}).run(until_caught_up=True)
    # another Projection object (as in another process) reads what the runner recorded
    failure = strict(store, set()).last_error()
    assert failure is not None
    assert failure.error == ErrorInfo("ValueError", "2 is not allowed", failure.error.traceback)
    assert "_deposited" in failure.error.traceback
    assert (failure.projection, failure.projection_version) == ("strict", 1)
    assert (failure.event_type, failure.stream) == ("Deposited", store.keys.stream("Account", "a1"))
    assert (failure.version, failure.partition, failure.position) == (3, 0, 3)
    assert before <= failure.failed_at <= datetime.now(UTC)
    assert str(failure).startswith("ValueError: 2 is not allowed at Deposited")

    fixed = strict(store, set())
    fixed.run(until_caught_up=True)
    assert fixed.last_error() is None
    assert store.client.exists(fixed.error_key) == 0
    assert store.client.lrange(fixed.key("amounts"), 0, -1) == [b"1", b"2", b"3"]


def test_a_later_failure_replaces_the_earlier_one(store: EventStore) -> None:
    _deposits(store, 1, 2, 3)
    with pytest.raises(ProjectionError):
        strict(store, {2}).run(until_caught_up=True)
    with pytest.raises(ProjectionError):
        strict(store, {3}).run(until_caught_up=True)  # past 2, stopped at 3
    failure = strict(store, set()).last_error()
    assert failure is not None
    assert (failure.position, failure.error.message) == (4, "3 is not allowed")


def test_a_failure_at_the_first_event_shows_the_version_at_zero(store: EventStore) -> None:
    _deposits(store, 1)
    projection = strict(store, {1})
    with pytest.raises(ProjectionError):
        projection.run(until_caught_up=True)
    field = store.client.hget(store.keys.checkpoints(0), projection.checkpoint_field)
    assert field == b"0"
    failure = projection.last_error()
    assert failure is not None
    assert failure.position == 2


def test_a_record_the_checkpoint_is_already_past_is_cleared_on_start(store: EventStore) -> None:
    _deposits(store, 1, 2)
    with pytest.raises(ProjectionError):
        strict(store, {2}).run(until_caught_up=True)
    projection = strict(store, set())
    store.client.hset(store.keys.checkpoints(0), projection.checkpoint_field, 3)  # moved by hand
    projection.run(until_caught_up=True)
    assert projection.last_error() is None
    assert store.client.lrange(projection.key("amounts"), 0, -1) == [b"1"]


def test_retiring_a_version_deletes_its_failure(store: EventStore) -> None:
    _deposits(store, 1)
    projection = strict(store, {1})
    with pytest.raises(ProjectionError):
        projection.run(until_caught_up=True)
    assert projection.last_error() is not None
    projection.retire()
    assert projection.last_error() is None
    assert store.client.exists(projection.error_key) == 0


def test_a_record_not_written_by_us_is_a_typed_error(store: EventStore) -> None:
    projection = strict(store, set())
    store.client.hset(projection.error_key, mapping={"position": "later"})
    with pytest.raises(StoredDataError) as info:
        projection.last_error()
    assert (info.value.stream, info.value.field) == (projection.error_key, "version")


@FIXTURE_OK
@given(failure=projection_failures)
def test_the_recorded_fields_read_back_as_the_same_failure(
    store: EventStore, failure: ProjectionFailure
) -> None:
    error = ProjectionError(
        failure.projection, event_type=failure.event_type, stream=failure.stream,
        version=failure.version, partition=failure.partition, position=failure.position,
        reason="any",
    )  # fmt: skip
    millis = round(failure.failed_at.timestamp() * 1000)
    key = store.keys.projection_error(failure.projection, failure.projection_version)
    fields: dict[Any, Any] = failure_fields(error, failure.error, millis)
    store.client.delete(key)
    store.client.hset(key, mapping=fields)
    stored = cast(dict[bytes, bytes], store.client.hgetall(key))
    assert parse_failure(key, failure.projection, failure.projection_version, stored) == failure
