"""The CLI's I/O-free parts: key classification, id checks, diagnosis, messages."""

from __future__ import annotations

import io
from typing import cast

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from eventstore import AggregateNotFound, KeySchema, Snapshot, UnknownEventType
from eventstore._redis.server import ServerInfo
from eventstore.cli._checks import check_ids, check_snapshot, classify_key
from eventstore.cli._diagnosis import Facts, NodeFacts, diagnose
from eventstore.cli._errors import CliError, describe
from eventstore.cli._output import Output
from eventstore.cli._state import redact

names = st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True)
ids = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20)


@given(ns=names, partitions=st.integers(1, 16), aggregate_type=names, aggregate_id=ids)
def test_every_key_the_schema_makes_is_classified(
    ns: str, partitions: int, aggregate_type: str, aggregate_id: str
) -> None:
    keys = KeySchema(ns, partitions)
    part = keys.partition_of(aggregate_id)
    stream = classify_key(keys, keys.stream(aggregate_type, aggregate_id))
    assert stream is not None
    assert (stream.kind, stream.partition, stream.aggregate_type, stream.aggregate_id) == (
        "stream", part, aggregate_type, aggregate_id,
    )  # fmt: skip
    snapshot = classify_key(keys, keys.snapshot(aggregate_type, aggregate_id))
    assert snapshot is not None
    assert snapshot.kind == "snapshot"
    for key in (
        keys.meta, keys.projections, keys.log(part), keys.position(part), keys.types(part),
        keys.checkpoints(part), keys.index(part, aggregate_type),
        keys.dead_letters(part, aggregate_type), keys.retry(part, aggregate_type),
        keys.read_model(aggregate_type, 2, "by-email"), keys.projection_lease(aggregate_type, 3),
        keys.projection_error(aggregate_type, 4),
    ):  # fmt: skip
        assert classify_key(keys, key) is not None, key
    assert classify_key(keys, f"{keys.tag(part)}:junk") is None
    assert classify_key(keys, f"{{{ns}:p{partitions}}}:log") is None
    assert classify_key(KeySchema(ns + "x", partitions), keys.log(part)) is None


_SAMPLES = {
    "<ns>": "es", "<n>": "0", "<type>": "T", "<id>": "x:y", "<group>": "g", "<name>": "nm",
    "<version>": "2", "...": "by-email",
}  # fmt: skip


def _documented_keys() -> list[str]:
    """Every key of the table in the KeySchema module docstring, with sample values."""
    import eventstore._core.keys as keys_module

    found = []
    for line in (keys_module.__doc__ or "").splitlines():
        if not line.startswith("``") or line.split()[1] == "channel":
            continue
        key = line.split("``")[1]
        for placeholder, sample in _SAMPLES.items():
            key = key.replace(placeholder, sample)
        found.append(key)
    return found


def test_every_documented_key_is_known_to_verify() -> None:
    # a key added to the schema (and its table) must be taught to `verify`'s classifier
    documented = _documented_keys()
    assert len(documented) >= 10
    schema = KeySchema("es", 1)
    unknown = [key for key in documented if classify_key(schema, key) is None]
    assert unknown == [], "teach eventstore/cli/_checks.py:classify_key these keys"


@given(ns=names, aggregate_id=ids)
def test_a_stream_under_the_wrong_tag_is_misplaced(ns: str, aggregate_id: str) -> None:
    keys = KeySchema(ns, 3)
    wrong = (keys.partition_of(aggregate_id) + 1) % 3
    found = classify_key(keys, f"{keys.tag(wrong)}:a:T:{aggregate_id}")
    assert found is not None
    assert found.kind == "misplaced"


@given(st.sets(st.integers(1, 60), max_size=40), st.integers(0, 5))
def test_check_ids_reports_exactly_the_missing_numbers(present: set[int], last: int) -> None:
    numbers = sorted(n for n in present if n > last)
    problems, new_last = check_ids("k", [f"0-{n}".encode() for n in numbers], last, "version")
    expected_end = numbers[-1] if numbers else last
    assert new_last == expected_end
    reported: set[int] = set()
    for problem in problems:
        assert problem.kind == "gap"
        span = problem.detail.split()[1]  # "version 4 is ..." or "versions 4..7 are ..."
        first, _, rest = span.partition("..")
        reported |= set(range(int(first), int(rest or first) + 1))
    assert reported == set(range(last + 1, expected_end + 1)) - set(numbers)


def test_check_ids_refuses_ids_that_are_not_versions() -> None:
    problems, last = check_ids("k", [b"0-1", b"1700000000000-0", b"0-2"], 0, "version")
    assert [p.kind for p in problems] == ["bad-entry-id"]
    assert last == 2


def test_check_snapshot_compares_with_the_replay() -> None:
    snap = Snapshot(3, "fp", {"balance": 5, "owner": "x"})
    assert check_snapshot("s", snap, 3, "fp", {"balance": 5, "owner": "x"}) == []
    (stale,) = check_snapshot("s", snap, 3, "fp", {"balance": 6, "owner": "x"})
    assert (stale.kind, stale.key) == ("stale-snapshot", "s")
    assert "'balance' is 5 in the snapshot but 6 by replay" in stale.detail
    assert check_snapshot("s", snap, 3, "other", {"balance": 6}) == []  # ignored by loads
    assert check_snapshot("s", snap, 3, None, None) == []  # class unknown
    (beyond,) = check_snapshot("s", snap, 2, None, None)
    assert beyond.kind == "snapshot-beyond-stream"


def _node(name: str = "", **info: object) -> NodeFacts:
    base = {
        "version": (7, 0, 15), "mode": "standalone", "maxmemory_policy": "noeviction",
        "appendonly": "yes", "appendfsync": "everysec", "stream_node_max_bytes": 512,
    }  # fmt: skip
    return NodeFacts(name, ServerInfo(**{**base, **info}), rdb_save="")  # type: ignore[arg-type]


def _facts(*nodes: NodeFacts, **info: object) -> Facts:
    return Facts(
        nodes=nodes or (_node("", **info),),
        lua_ok=True,
        lua_error="",
        missing_commands=(),
        latency_ms={"p50": 0.1, "max": 0.3},
    )


@pytest.mark.parametrize(
    ("info", "check", "level"),
    [
        ({}, "persistence", "ok"),
        ({"appendonly": "no"}, "persistence", "error"),
        ({"appendfsync": "no"}, "persistence", "warning"),
        ({"appendonly": None}, "persistence", "warning"),
        ({"maxmemory_policy": "allkeys-lfu"}, "maxmemory-policy", "error"),
        ({"maxmemory_policy": "volatile-lru"}, "maxmemory-policy", "ok"),
        ({"stream_node_max_bytes": 4096}, "stream-node-max-bytes", "warning"),
        ({"stream_node_max_bytes": 0}, "stream-node-max-bytes", "warning"),
        ({"version": (6, 0, 9)}, "server", "error"),
    ],
)
def test_diagnosis(info: dict[str, object], check: str, level: str) -> None:
    (finding,) = [f for f in diagnose(_facts(**info)) if f.check == check]
    assert finding.level == level
    assert (finding.advice != "") == (level != "ok")


def test_diagnosis_judges_every_node_of_a_cluster() -> None:
    nodes = [_node("h:1", mode="cluster"), _node("h:2", mode="cluster", appendonly="no"),
             _node("h:3", mode="cluster", maxmemory_policy="allkeys-lru")]  # fmt: skip
    findings = diagnose(_facts(*nodes))
    per_node = {(f.check, f.node): f.level for f in findings if f.node}
    for check in ("server", "persistence", "maxmemory-policy", "stream-node-max-bytes"):
        assert [node for c, node in per_node if c == check] == ["h:1", "h:2", "h:3"]
    assert [per_node["persistence", n] for n in ("h:1", "h:2", "h:3")] == ["ok", "error", "ok"]
    assert [per_node["maxmemory-policy", n] for n in ("h:1", "h:2", "h:3")] == [
        "ok", "ok", "error",
    ]  # fmt: skip
    assert {f.check for f in findings if not f.node} == {"lua", "commands", "latency"}
    assert all(f.as_json()["node"] is None for f in diagnose(_facts()))


def test_describe_gives_what_where_and_what_to_do() -> None:
    where, server = "namespace 'es' at redis://h:1/0", "redis://h:1/0"
    down = describe(redis.ConnectionError("Error 111.\nrefused."), where, server)
    assert down.startswith("cannot reach Redis at redis://h:1/0: Error 111. refused;")
    assert "\n" not in down
    missing = describe(AggregateNotFound("Account", "x"), where, server)
    assert missing.startswith("Account 'x' not found in namespace 'es'")
    unknown = describe(UnknownEventType("{es:p0}:a:A:x", 2, "Gone"), where, server)
    assert "pass --app" in unknown
    assert describe(CliError("what", "do this"), where, server) == "what; do this"


def test_redact_hides_passwords() -> None:
    assert redact("redis://u:pw@h:6379/0") == "redis://u:***@h:6379/0"
    assert redact("rediss://:pw@h/0") == "rediss://:***@h/0"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"


def test_progress_bars_show_rate_on_a_terminal_only() -> None:
    quiet = Output(json_mode=False)
    quiet.err = Console(file=io.StringIO(), force_terminal=False)
    with quiet.progress("working", 10) as advance:
        advance(10)
    assert cast(io.StringIO, quiet.err.file).getvalue() == ""
    shown = Output(json_mode=False)
    shown.err = Console(file=io.StringIO(), force_terminal=True, width=120)
    with shown.progress("working", 10) as advance:
        advance(4)
    assert shown.shows_progress
    rendered = cast(io.StringIO, shown.err.file).getvalue()
    assert "working" in rendered
    assert "4/10" in rendered
    assert Output(json_mode=True).shows_progress is False
