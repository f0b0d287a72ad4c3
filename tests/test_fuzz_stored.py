"""Fuzzed bad stored data: hypothesis plants corruptions with raw Redis commands (wrong,
missing and extra fields, bad JSON, JSON of the wrong shape, unknown types and schema
versions, huge values, non-UTF-8 bytes, keys of the wrong type, log pointers to nowhere,
bad snapshots and checkpoints) into a small known history, then runs every read path.

Each path either raises a ``StoredDataError`` whose ``stream`` is a key at fault and
whose message names it (and the entry, when one is at fault), or returns exactly what it
returns on the clean history (when it does not read the corrupted data, or may ignore it:
a snapshot of another shape). Never another exception, never other data. The consumer
group worker dead-letters an event it cannot decode, with an error naming the key.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import attrs
import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    EventStore,
    Projection,
    ProjectionContext,
    ProjectionError,
    RecordedEvent,
    Repository,
    StoredDataError,
)
from eventstore._core.records import Entries
from eventstore.cli import cli
from tests.domain import Account, Deposited, Opened


def fuzz(examples: int) -> settings:
    """The profile's example count (dev 25, ci 200), capped to keep CI within budget."""
    return settings(
        max_examples=min(cast(settings, settings.default).max_examples, examples),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


HISTORY: dict[str, list[Any]] = {
    "acc-1": [Opened(owner="ann"), Deposited(amount=1), Deposited(amount=2), Deposited(amount=3)],
    "acc-2": [Opened(owner="bo"), Deposited(amount=5)],
}
EVENT_FIELDS = ("t", "s", "i", "ts", "p", "d", "m", "c", "z")
LOG_FIELDS = ("k", "v", "t", "a")
NOT_UTF8 = st.sampled_from([b"\xff", b"\xc3\x28", b'{"amount":"\xfe"}', b"\x80abc"])
HUGE = st.sampled_from([1, 3]).map(lambda mb: "x" * (mb * 1024 * 1024))
DEEP = st.integers(2_000, 20_000).map(lambda n: "[" * n + "]" * n)


@attrs.frozen
class Corruption:
    """What to plant: ``fields`` of entry ``entry`` of the ``target`` key (or a whole key)."""

    target: str  # "event", "log", "snapshot", "wrong-type", "event-id", "log-id",
    # "counter", "checkpoint"
    entry: int
    fields: dict[str, Any] = attrs.field(factory=dict)
    drop: tuple[str, ...] = ()
    key_kind: str = ""  # for wrong-type: which key, and what it becomes


# -- strategies ---------------------------------------------------------------------------

BAD_TEXT = st.one_of(NOT_UTF8, HUGE, st.just(""), st.text(min_size=1, max_size=20))
BAD_INT = st.one_of(
    NOT_UTF8,
    st.sampled_from(["", "x", "1.5", "-1", "1e3", " 1", "99999999999999999999999"]),
)
BAD_JSON = st.one_of(
    st.sampled_from(["{", "[1,2]", "1", '"x"', "null", "{}", '{"amount":"lots"}']),
    st.sampled_from(['{"amount":[1]}', '{"amount":1,"extra":2}', '{"owner":1}', "{'a':1}"]),
    NOT_UTF8,
    DEEP,
    HUGE.map(lambda s: json.dumps({"amount": s})),
    st.text(max_size=30),
)


def _json_object(value: str | bytes) -> bool:
    try:
        return isinstance(json.loads(value), dict)
    except (ValueError, RecursionError):
        return False


EVENT_VALUE: dict[str, st.SearchStrategy[Any]] = {
    "t": st.one_of(st.sampled_from(["NoSuchType", "Account", ""]), NOT_UTF8, HUGE),
    "s": st.one_of(BAD_INT, st.sampled_from(["0", "2", "99"])),
    "i": st.one_of(NOT_UTF8),
    "ts": BAD_INT,
    "p": BAD_INT,
    "d": BAD_JSON,
    "m": BAD_JSON.filter(lambda v: not _json_object(v)),  # any object is valid metadata
    "c": NOT_UTF8,
    "z": NOT_UTF8,
}


@st.composite
def event_corruptions(draw: st.DrawFn) -> Corruption:
    version = draw(st.integers(1, 4))
    names = draw(st.lists(st.sampled_from(EVENT_FIELDS), min_size=1, max_size=3, unique=True))
    drop = tuple(n for n in names if n in ("t", "s", "i", "ts", "p", "d") and draw(st.booleans()))
    fields = {n: draw(EVENT_VALUE[n]) for n in names if n not in drop}
    if draw(st.booleans()):
        fields["unknown-field"] = draw(st.one_of(NOT_UTF8, st.text(max_size=5)))
    return Corruption("event", version, fields, drop)


@st.composite
def log_corruptions(draw: st.DrawFn) -> Corruption:
    position = draw(st.integers(1, 6))
    name = draw(st.sampled_from(LOG_FIELDS))
    if draw(st.booleans()):
        return Corruption("log", position, drop=(name,))
    values: dict[str, st.SearchStrategy[Any]] = {
        "k": st.one_of(
            NOT_UTF8,
            st.sampled_from(
                [
                    "nowhere",
                    "{X:p0}:a:Account:acc-1",
                    "MISSING",
                    "OTHER-TYPE",
                    "Account:acc-2",  # the pointer form the script writes, another aggregate
                    "Account:never-written",
                    "Account:",
                    "No type!:acc-1",
                ]
            ),
        ),
        "v": st.one_of(BAD_INT, st.sampled_from(["0", "99"])),
        "t": st.one_of(NOT_UTF8),
        "a": st.one_of(NOT_UTF8),
    }
    return Corruption("log", position, {name: draw(values[name])})


@st.composite
def snapshot_corruptions(draw: st.DrawFn) -> Corruption:
    fields: dict[str, Any] = {
        "v": draw(st.one_of(st.integers(-3, 6).map(str), BAD_INT)),
        "f": draw(st.one_of(st.just("FINGERPRINT"), st.just("other"), NOT_UTF8)),
        "s": draw(
            st.one_of(
                BAD_JSON,
                st.just("TRUE STATE"),  # the state at a valid version: only v/f are bad
                st.just('{"owner":"ann","balance":"x","tags":[]}'),
            )
        ),
    }
    drop = tuple(n for n in ("v", "f", "s") if draw(st.integers(0, 5)) == 0)
    if draw(st.booleans()):
        fields["ts"] = draw(BAD_INT)
    return Corruption("snapshot", 0, {k: v for k, v in fields.items() if k not in drop}, drop)


RIGHT_TYPES = {
    ("stream", "stream"),
    ("log", "stream"),
    ("snapshot", "hash"),
    ("counter", "string"),
    ("checkpoint", "hash"),
}
WRONG_TYPES = st.tuples(
    st.sampled_from(["stream", "log", "snapshot", "counter", "checkpoint"]),
    st.sampled_from(["hash", "string", "list", "set", "stream"]),
).filter(lambda kt: kt not in RIGHT_TYPES)

CORRUPTIONS = st.one_of(
    event_corruptions(),
    log_corruptions(),
    snapshot_corruptions(),
    WRONG_TYPES.map(lambda kt: Corruption("wrong-type", 0, key_kind=f"{kt[0]}:{kt[1]}")),
    st.sampled_from(["1700000000000-0", "5-0", "1-1"]).map(
        lambda i: Corruption("event-id", 0, {"id": i})
    ),
    st.sampled_from(["1-0", "9-9"]).map(lambda i: Corruption("log-id", 0, {"id": i})),
    BAD_INT.map(lambda v: Corruption("counter", 0, {"value": v})),
    BAD_INT.map(lambda v: Corruption("checkpoint", 0, {"value": v})),
)


# -- the history and the planting --------------------------------------------------------


@attrs.define
class Scene:
    """A clean history in a fresh namespace, then one corruption planted into it."""

    store: EventStore
    corruption: Corruption
    at_fault: set[str] = attrs.field(factory=set)  # keys an error may name

    @property
    def client(self) -> redis.Redis:
        return self.store.client


def _write_history(store: EventStore) -> None:
    for aggregate_id, events in HISTORY.items():
        ids = [f"{aggregate_id}-{n}" for n in range(1, len(events) + 1)]
        store.append("Account", aggregate_id, events, 0, event_ids=ids)


@contextlib.contextmanager
def scene(server_url: str, corruption: Corruption) -> Iterator[Scene]:
    client = redis.Redis.from_url(server_url)
    client.flushdb()
    client.close()
    store = EventStore.from_url(server_url, namespace=f"f{uuid.uuid4().hex[:6]}")
    try:
        _write_history(store)
        planted = Scene(store, corruption)
        PLANTERS[corruption.target](planted)
        yield planted
    finally:
        store.close()


def _rewrite_stream(
    client: redis.Redis, key: str, entries: list[tuple[str, dict[Any, Any]]]
) -> None:
    client.delete(key)
    for entry_id, fields in entries:
        client.xadd(key, fields or {"empty": ""}, entry_id)


def _mutated(fields: dict[bytes, bytes], corruption: Corruption) -> dict[Any, Any]:
    out: dict[Any, Any] = {k.decode(): v for k, v in fields.items()}
    for name in corruption.drop:
        out.pop(name, None)
    out.update(corruption.fields)
    return out


def _plant_event(s: Scene) -> None:
    key = s.store.keys.stream("Account", "acc-1")
    entries = cast(Entries, s.client.xrange(key))
    rewritten = [
        (i.decode(), _mutated(f, s.corruption) if n == s.corruption.entry else f)
        for n, (i, f) in enumerate(entries, start=1)
    ]
    _rewrite_stream(s.client, key, rewritten)
    s.at_fault |= {key, s.store.keys.log(0)}  # verify: the log and the event disagree


def _plant_log(s: Scene) -> None:
    keys, log = s.store.keys, s.store.keys.log(0)
    fields = dict(s.corruption.fields)
    if fields.get("k") == "MISSING":
        fields["k"] = keys.stream("Account", "never-written")
    elif fields.get("k") == "OTHER-TYPE":
        fields["k"] = keys.snapshot("Account", "acc-1")
    corruption = attrs.evolve(s.corruption, fields=fields)
    entries = cast(Entries, s.client.xrange(log))
    rewritten = [
        (i.decode(), _mutated(f, corruption) if n == corruption.entry else f)
        for n, (i, f) in enumerate(entries, start=1)
    ]
    _rewrite_stream(s.client, log, rewritten)
    s.at_fault |= {log, keys.stream("Account", "acc-1"), keys.stream("Account", "acc-2")}
    if isinstance(fields.get("k"), str):
        s.at_fault.add(fields["k"])
        aggregate_type, _, aggregate_id = fields["k"].partition(":")
        if aggregate_id and not fields["k"].startswith("{"):  # <type>:<id>: the stream
            s.at_fault.add(keys.stream(aggregate_type, aggregate_id))


def _plant_snapshot(s: Scene) -> None:
    key = s.store.keys.snapshot("Account", "acc-1")
    fields = dict(s.corruption.fields)
    if fields.get("f") == "FINGERPRINT":
        fields["f"] = Account.schema_fingerprint()
    if fields.get("s") == "TRUE STATE":  # what the state is at the version, if it is one
        version = int(fields["v"]) if str(fields.get("v", "")).isdigit() else 4
        balance = sum(e.amount for e in HISTORY["acc-1"][1 : max(version, 1)])
        fields["s"] = json.dumps({"owner": "ann", "balance": balance, "tags": []})
    if fields:
        s.client.hset(key, mapping=cast(dict[Any, Any], fields))
    else:
        s.client.hset(key, "unrelated", "1")
    s.at_fault |= {key, s.store.keys.stream("Account", "acc-1")}


def _plant_wrong_type(s: Scene) -> None:
    keys = s.store.keys
    which, kind = s.corruption.key_kind.split(":")
    key = {
        "stream": keys.stream("Account", "acc-1"),
        "log": keys.log(0),
        "snapshot": keys.snapshot("Account", "acc-1"),
        "counter": keys.position(0),
        "checkpoint": keys.checkpoints(0),
    }[which]
    s.client.delete(key)
    if kind == "hash":
        s.client.hset(key, "v", "1")
    elif kind == "string":
        s.client.set(key, "1")
    elif kind == "list":
        s.client.rpush(key, "1")
    elif kind == "set":
        s.client.sadd(key, "1")
    else:
        s.client.xadd(key, {"x": "1"}, "0-1")
    s.at_fault.add(key)


def _plant_event_id(s: Scene) -> None:
    key = s.store.keys.stream("Account", "acc-1")
    with contextlib.suppress(redis.ResponseError):  # an id below the last is refused
        s.client.xadd(key, {"t": "Deposited", "s": "1", "d": "{}"}, s.corruption.fields["id"])
    s.at_fault.add(key)


def _plant_log_id(s: Scene) -> None:
    log = s.store.keys.log(0)
    stream = s.store.keys.stream("Account", "acc-1")
    fields: dict[Any, Any] = {"k": stream, "v": "1", "t": "Opened", "a": "Account"}
    with contextlib.suppress(redis.ResponseError):
        s.client.xadd(log, fields, s.corruption.fields["id"])
    s.at_fault.add(log)


def _plant_counter(s: Scene) -> None:
    key = s.store.keys.position(0)
    s.client.set(key, s.corruption.fields["value"])
    s.at_fault.add(key)


def _plant_checkpoint(s: Scene) -> None:
    key = s.store.keys.checkpoints(0)
    s.client.hset(key, _projection(s.store).checkpoint_field, s.corruption.fields["value"])
    s.at_fault.add(key)


PLANTERS: dict[str, Callable[[Scene], None]] = {
    "event": _plant_event,
    "log": _plant_log,
    "snapshot": _plant_snapshot,
    "wrong-type": _plant_wrong_type,
    "event-id": _plant_event_id,
    "log-id": _plant_log_id,
    "counter": _plant_counter,
    "checkpoint": _plant_checkpoint,
}


# -- what a clean history reads as ---------------------------------------------------------


def _fact(e: RecordedEvent) -> tuple[Any, ...]:
    return (e.aggregate_id, e.version, e.position, e.event_id, e.event, dict(e.metadata))


CLEAN_EVENTS: dict[str, list[tuple[Any, ...]]] = {
    aggregate_id: [
        (aggregate_id, v, p, f"{aggregate_id}-{v}", event, {})
        for v, (p, event) in enumerate(zip(positions, events, strict=True), start=1)
    ]
    for (aggregate_id, events), positions in zip(
        HISTORY.items(), [range(1, 5), range(5, 7)], strict=True
    )
}
CLEAN_ALL = CLEAN_EVENTS["acc-1"] + CLEAN_EVENTS["acc-2"]
CLEAN_BALANCE = {"acc-1": ("ann", 6), "acc-2": ("bo", 5)}


def _outcome(s: Scene, read: Callable[[], Any], clean: Any, where: str) -> None:
    """``read()`` returns ``clean``, or raises a StoredDataError naming a key at fault."""
    error: StoredDataError | None = None
    try:
        got = read()
    except StoredDataError as exc:
        error = exc
    if error is None:
        assert got == clean, f"{where}: wrong data for {s.corruption}"
        return
    named = error.stream
    assert named in s.at_fault, f"{where}: {error!r} names {named}, not {s.at_fault}"
    assert named in str(error), where
    target, entry = s.corruption.target, s.corruption.entry
    if target == "event" and named == s.store.keys.stream("Account", "acc-1"):
        assert error.version == entry, f"{where}: {error!r} names another version"
        assert f"version {entry}" in str(error), where
    if target == "log" and named == s.store.keys.log(0):
        assert error.version == entry, f"{where}: {error!r} names another position"


def _projection(store: EventStore) -> Projection:
    projection = Projection(store, "fuzz", block_ms=50, reconnect_for=0.5)

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("totals"), ctx.record.aggregate_id, event.amount)

    return projection


# -- the read paths ------------------------------------------------------------------------


@fuzz(200)
@given(corruption=CORRUPTIONS)
def test_loads_and_reads(server_url: str, corruption: Corruption) -> None:
    with scene(server_url, corruption) as s:
        accounts = Repository(s.store, Account)
        for aggregate_id, (owner, balance) in CLEAN_BALANCE.items():

            def get(aggregate_id: str = aggregate_id) -> tuple[str, int]:
                account = accounts.get(aggregate_id)
                return (account.owner, account.balance)

            _outcome(s, get, (owner, balance), f"get {aggregate_id}")
            _outcome(
                s,
                functools.partial(_facts_read, s.store, aggregate_id),
                CLEAN_EVENTS[aggregate_id],
                f"read {aggregate_id}",
            )
        _outcome(
            s,
            lambda: [_fact(e) for e in s.store.read("Account", "acc-1", backwards=True)],
            CLEAN_EVENTS["acc-1"][::-1],
            "read backwards",
        )
        _outcome(s, lambda: s.store.version_of("Account", "acc-1"), 4, "version_of")


@fuzz(150)
@given(corruption=CORRUPTIONS)
def test_log_readers(server_url: str, corruption: Corruption) -> None:
    with scene(server_url, corruption) as s:
        _outcome(s, lambda: [_fact(e) for e in s.store.read_all()], CLEAN_ALL, "read_all")
        _outcome(
            s,
            lambda: [_fact(e) for e in s.store.read_all(event_types={"Opened"})],
            [CLEAN_ALL[0], CLEAN_ALL[4]],
            "read_all filtered",
        )
        _outcome(s, lambda: _subscribed(s.store), CLEAN_ALL, "subscribe")
        _outcome(s, lambda: s.store.head().position(0), 6, "head")
        _outcome(s, lambda: _projected(s.store), {"acc-1": 6, "acc-2": 5}, "projection")


def _facts_read(store: EventStore, aggregate_id: str) -> list[tuple[Any, ...]]:
    return [_fact(e) for e in store.read("Account", aggregate_id)]


def _subscribed(store: EventStore) -> list[tuple[Any, ...]]:
    got = []
    deadline = time.monotonic() + 10
    with store.subscribe(block_ms=20, reconnect_for=0.5) as sub:
        for event in sub:
            got.append(_fact(event))
            if len(got) >= len(CLEAN_ALL):
                break
            assert time.monotonic() < deadline, "the subscription hangs"
        assert sub.caught_up or len(got) == len(CLEAN_ALL)
    return got


def _projected(store: EventStore) -> dict[str, int]:
    projection = _projection(store)
    try:
        projection.run(until_caught_up=True)
    except ProjectionError as exc:  # a handler failing on a decoded event: not ours
        raise AssertionError(f"a bad event reached a handler: {exc}") from exc
    totals = cast(dict[bytes, bytes], store.client.hgetall(projection.active_key("totals")))
    return {k.decode(): int(v) for k, v in totals.items()}


@fuzz(100)
@given(corruption=CORRUPTIONS)
def test_consumer_group_worker(server_url: str, corruption: Corruption) -> None:
    with scene(server_url, corruption) as s:
        handled: list[tuple[Any, ...]] = []

        def work() -> list[tuple[Any, ...]]:
            group = s.store.consumer_group("g")
            worker = group.worker("w", lambda r: handled.append(_fact(r)), max_deliveries=1)
            worker.run(stop_when_idle=True)
            dead = group.dead_letters()
            for letter in dead:  # parked, with an error naming the key at fault
                assert any(key in letter.error.message for key in s.at_fault), letter.error
            handled_ids = {fact[3] for fact in handled}
            assert len(handled_ids) == len(handled), "an event was handled twice"
            if dead:
                return CLEAN_ALL  # the undecodable events are parked: nothing else wrong
            return sorted(handled, key=lambda fact: fact[2])

        _outcome(s, work, CLEAN_ALL, "worker")
        for fact in handled:  # whatever was handled is exactly what is stored
            assert fact in CLEAN_ALL


@fuzz(80)
@given(corruption=CORRUPTIONS)
def test_cli_events_replay_verify(server_url: str, corruption: Corruption) -> None:
    with scene(server_url, corruption) as s:
        base = ["--url", server_url, "--namespace", s.store.namespace, "--app", "tests.domain"]
        runner = CliRunner()
        for args in (["events", "Account", "acc-1"], ["replay", "Account", "acc-1"]):
            result = runner.invoke(cli, [*base, *args, "--json"])
            assert "Traceback" not in result.output
            if result.exit_code != 0:
                assert "corrupt stored data" in result.stderr or "unknown event type" in (
                    result.stderr
                ), result.stderr
                assert any(key in result.stderr for key in s.at_fault), result.stderr
        verify = runner.invoke(cli, [*base, "verify", "--json"])
        assert "Traceback" not in verify.output
        assert verify.exit_code in (0, 1), verify.output
        if verify.exit_code == 1 and "problems" in verify.stdout:
            report = json.loads(verify.stdout)
            assert report["problems"], report
            assert any(p["key"] in s.at_fault for p in report["problems"]), report
        elif verify.exit_code == 1:  # verify itself stopped: a one-line error naming the key
            assert "corrupt stored data" in verify.output, verify.output
            assert any(key in verify.output for key in s.at_fault), verify.output


def test_a_pointer_whose_event_records_another_position_is_named(server_url: str) -> None:
    """Not fuzzed above (any integer is a valid position): the log says position 2, the
    event says another one; log readers report it instead of returning either."""
    with scene(server_url, Corruption("event", 2, {"p": "3"})) as s:
        stream = s.store.keys.stream("Account", "acc-1")
        with pytest.raises(StoredDataError) as info:
            list(s.store.read_all())
        assert (info.value.stream, info.value.version, info.value.field) == (stream, 2, "p")
        assert "position 2" in str(info.value)
