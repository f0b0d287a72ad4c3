"""The I/O-free side of consumer groups: reply parsing (RESP2 and RESP3), lag, dead letters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eventstore._core.groups import (
    ErrorInfo,
    GroupInfo,
    dead_letter_id,
    describe_error,
    parse_claim_reply,
    parse_group_info,
    parse_pending_entries,
    parse_read_reply,
    parse_trim_reply,
    partition_status,
    split_dead_letter_id,
)

positions = st.integers(0, 10**12)


def test_read_reply_in_both_protocols() -> None:
    resp2 = [[b"{es:p0}:log", [[b"0-1", [b"k", b"x"]], [b"0-2", None]]]]
    resp3 = {b"{es:p0}:log": [[b"0-1", [b"k", b"x"]], [b"0-2", None]]}
    # fields stay as the reply holds them (the log parser reads flat lists directly)
    expected = {"{es:p0}:log": [(b"0-1", [b"k", b"x"]), (b"0-2", None)]}
    assert parse_read_reply(resp2) == expected
    assert parse_read_reply(resp3) == expected
    assert parse_read_reply(None) == {}


def test_claim_reply_of_redis_7_names_deleted_ids() -> None:
    reply = parse_claim_reply([b"0-0", [[b"0-1", [b"k", b"x"]]], [b"0-2", b"0-3"]])
    assert reply.done
    assert reply.entries == ((b"0-1", [b"k", b"x"]),)
    assert (reply.deleted, reply.has_holes) == (("0-2", "0-3"), False)


def test_claim_reply_of_redis_62_has_nil_holes() -> None:
    reply = parse_claim_reply([b"0-9", [[b"0-1", [b"k", b"x"]], None, None]])
    assert not reply.done
    assert reply.cursor == "0-9"
    assert len(reply.entries) == 1
    assert (reply.deleted, reply.has_holes) == ((), True)


def test_pending_entries_and_group_info() -> None:
    entries = parse_pending_entries([[b"0-4", b"w1", 1200, 3]])
    assert [(e.entry_id, e.consumer, e.idle_ms, e.deliveries) for e in entries] == [
        ("0-4", "w1", 1200, 3)
    ]
    resp3 = [{b"name": b"g", b"consumers": 2, b"pending": 1, b"last-delivered-id": b"0-7"}]
    resp2 = [[b"name", b"g", b"consumers", 2, b"pending", 1, b"last-delivered-id", b"0-7"]]
    for reply in (resp3, resp2):
        assert parse_group_info(reply, "g") == GroupInfo("g", 2, 1, "0-7")
        assert parse_group_info(reply, "other") is None


@given(last=positions, delivered=positions, pending=st.integers(0, 1000), retry=st.data())
def test_lag_is_the_undelivered_part_of_log_and_retry_stream(
    last: int, delivered: int, pending: int, retry: st.DataObject
) -> None:
    delivered = min(delivered, last)
    retry_pending = retry.draw(st.integers(0, 50))
    retry_length = retry_pending + retry.draw(st.integers(0, 50))
    status = partition_status(
        1,
        last_position=last,
        log_group=GroupInfo("g", 1, pending, f"0-{delivered}"),
        retry_length=retry_length,
        retry_pending=retry_pending,
        dead_letters=0,
    )
    assert status.lag == (last - delivered) + (retry_length - retry_pending)
    assert status.pending == pending + retry_pending
    assert status.delivered_position == delivered


@given(partition=st.integers(0, 10_000), ms=positions, seq=st.integers(0, 99))
def test_dead_letter_ids_round_trip(partition: int, ms: int, seq: int) -> None:
    assert split_dead_letter_id(dead_letter_id(partition, f"{ms}-{seq}")) == (
        partition,
        f"{ms}-{seq}",
    )


def test_describe_error_keeps_type_message_and_frames() -> None:
    def declined() -> None:
        raise ValueError("card declined")

    try:
        declined()
    except ValueError as exc:
        info = describe_error(exc)
    assert (info.type, info.message) == ("ValueError", "card declined")
    assert "declined()" in info.traceback
    assert str(info) == "ValueError: card declined"
    assert str(ErrorInfo("Crash", "", "")) == "Crash"


def test_trim_reply() -> None:
    result = parse_trim_reply(2, [5, 4, 3])
    assert (result.partition, result.safe_point, result.trimmed_to, result.removed) == (2, 5, 4, 3)
