"""A Redis user with exactly the rule of ``acl_rule`` can do everything; less is refused
with a ``PermissionDenied`` naming the user and what is missing.

Each server is private to this module: ``default`` is switched off once an admin user
exists, so nothing runs with the default user's rights by accident.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
import redis

from eventstore import (
    AsyncEventStore,
    AsyncProjection,
    AsyncProjectionContext,
    EventStore,
    PermissionDenied,
    Projection,
    ProjectionContext,
    RecordedEvent,
    Repository,
    acl_rule,
)
from eventstore._core.acl import acl_tokens
from eventstore._core.permissions import permission_denied
from eventstore.testing import BlockingAsyncStore, RedisServer
from tests.cli_helpers import one_line_error, run, run_json
from tests.domain import Account, Deposited, Opened
from tests.fronts import Front, open_store
from tests.servers import ALL_SERVERS, server_binary
from tests.waiting import wait_for

DOCS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
FAST = timedelta(milliseconds=50)
APP = "tests.domain"


pytestmark = pytest.mark.both_fronts


class AclServer:
    """A server with an ``admin`` user and the ``default`` user off."""

    def __init__(self, binary: str) -> None:
        self.server = RedisServer(binary, config={"appendonly": "yes"})
        self.server.start()
        boot = self.server.client()
        boot.acl_setuser("admin", enabled=True, passwords=["+admin-pw"], keys=["*"],
                         channels=["*"], commands=["+@all"])  # fmt: skip
        boot.acl_setuser("default", enabled=False)
        boot.close()
        self.admin = redis.Redis(port=self.server.port, username="admin", password="admin-pw")
        version = str(self.admin.info("server")["redis_version"])
        self.version = tuple(int(part) for part in version.split(".")[:2])

    def user(self, name: str, tokens: list[str]) -> str:
        """Create ``name`` with ``tokens`` and return a URL that logs in as it."""
        command = ("ACL", "SETUSER", name, "reset", "on", f">{name}-pw", *tokens)
        self.admin.execute_command(*command)  # type: ignore[no-untyped-call]
        return f"redis://{name}:{name}-pw@127.0.0.1:{self.server.port}/0"

    def close(self) -> None:
        self.admin.close()
        self.server.close()


@pytest.fixture(scope="module", params=ALL_SERVERS)
def acl_server(request: pytest.FixtureRequest) -> Iterator[AclServer]:
    binary = server_binary(request.param)
    server = AclServer(binary)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def ns() -> str:
    return f"acl{uuid.uuid4().hex[:6]}"


def _app_url(server: AclServer, ns: str, **options: object) -> str:
    rule = acl_rule(ns, redis_version=server.version, **options)  # type: ignore[arg-type]
    return server.user(f"app-{ns}", rule.split(" "))


def test_the_documented_rule_is_the_code_rule() -> None:
    page = DOCS.read_text()
    for version in ((7, 2), (7, 0), (6, 2)):
        assert acl_rule("orders", redis_version=version) in page, version
    assert acl_rule("orders") == acl_rule("orders", redis_version=(8, 0))


def test_the_rule_covers_exactly_the_namespace() -> None:
    tokens = acl_tokens("orders")
    keys = [t for t in tokens if t.startswith("~")]
    channels = [t for t in tokens if t.startswith("&")]
    assert keys == ["~{orders:p*}:*", "~orders:*", "~{orders:rm:*"]
    assert channels == ["&orders:live:*", "&{orders:p*}:live:*"]
    assert tokens.index("-@all") < min(tokens.index(t) for t in tokens if t.startswith("+"))
    assert "+config|get" not in tokens
    assert "+eval" not in tokens
    assert "+config|get" in acl_tokens("orders", read_config=True)
    assert "+spublish" not in acl_tokens("orders", redis_version=(6, 2))
    assert "+waitaof" not in acl_tokens("orders", redis_version=(7, 0))
    assert acl_tokens("orders", extra_commands=["RPUSH"])[-1] == "+rpush"


def _take(sub: Iterator[RecordedEvent], n: int) -> list[RecordedEvent]:
    return [next(sub) for _ in range(n)]


def _exercise_api(store: EventStore) -> None:
    assert store.server.config_refused  # the app user may not run CONFIG GET
    accounts = Repository(store, Account, snapshot_every=2)
    account = Account(id="a1")
    account.open("ann")
    account.deposit(5)
    accounts.save(account)
    account.deposit(3)
    accounts.save(account)
    assert accounts.get("a1").balance == 8
    assert store.read_snapshot("Account", "a1") is not None
    assert [r.version for r in store.read("Account", "a1")] == [1, 2, 3]
    assert len(list(store.read_all())) == 3

    with store.subscribe(block_ms=100) as sub:
        events = iter(sub)
        assert len(_take(events, 3)) == 3
        store.append("Account", "a2", [Opened(owner="bob")], 0)
        (live,) = _take(events, 1)
        assert live.aggregate_id == "a2"

    with store.live(["Account"]) as feed:
        writer = threading.Timer(0.2, store.append, ("Account", "a2", [Deposited(amount=1)], 1))
        writer.start()
        note = next(iter(feed))
        writer.join()
        assert feed.fetch(note).event == Deposited(amount=1)


def _exercise_projection_and_group(store: EventStore) -> None:
    balances = Projection(store, "balances", version=1)

    @balances.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("balance"), ctx.record.aggregate_id, event.amount)

    balances.run(until_caught_up=True)
    balances.promote()
    assert store.client.hget(balances.active_key("balance"), "a1") == b"8"

    group = store.consumer_group("mailer")
    refuse = {"a2"}

    def handler(recorded: RecordedEvent) -> None:
        if recorded.aggregate_id in refuse:
            raise RuntimeError("mail server down")

    group.worker("w1", handler, max_deliveries=1, claim_idle=FAST).run(stop_when_idle=True)
    assert len(group.dead_letters()) == 2
    refuse.clear()
    assert group.replay_dead_letters() == 2
    group.worker("w2", handler, claim_idle=FAST).run(stop_when_idle=True)
    assert (group.lag(), group.pending(), group.dead_letters()) == (0, 0, [])
    assert [r.safe_point for r in store.trim_log()]


async def _exercise_async_projection_and_group(store: AsyncEventStore) -> None:
    balances = AsyncProjection(store, "balances", version=1)

    @balances.on(Deposited)
    async def _deposited(event: Deposited, ctx: AsyncProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("balance"), ctx.record.aggregate_id, event.amount)

    await balances.run(until_caught_up=True)
    await balances.promote()
    assert await store.client.hget(await balances.active_key("balance"), "a1") == b"8"

    group = await store.consumer_group("mailer")
    refuse = {"a2"}

    async def handler(recorded: RecordedEvent) -> None:
        if recorded.aggregate_id in refuse:
            raise RuntimeError("mail server down")

    await group.worker("w1", handler, max_deliveries=1, claim_idle=FAST).run(stop_when_idle=True)
    assert len(await group.dead_letters()) == 2
    refuse.clear()
    assert await group.replay_dead_letters() == 2
    await group.worker("w2", handler, claim_idle=FAST).run(stop_when_idle=True)
    assert (await group.lag(), await group.pending(), await group.dead_letters()) == (0, 0, [])
    assert [r.safe_point for r in await store.trim_log()]


def _exercise_cli(url: str, ns: str) -> None:
    for args in (
        ("stats",),
        ("events", "Account", "a1"),
        ("replay", "Account", "a1"),
        ("log",),
        ("groups", "list"),
        ("groups", "pending", "mailer"),
        ("dlq", "list", "mailer"),
        ("projections", "list"),
        ("verify",),
        ("snapshots", "verify", "Account"),
        ("snapshots", "take", "Account", "a2"),
    ):
        result = run(url, ns, *args, app=APP)
        assert result.exit_code == 0, (args, result.output)
    doctor = run_json(url, ns, "doctor", app=APP, expect_exit=0)
    assert all(f["level"] != "error" for f in doctor["findings"]), doctor


@pytest.mark.slow
def test_a_user_with_exactly_the_rule_can_use_every_feature(
    acl_server: AclServer, ns: str, front: Front
) -> None:
    url = _app_url(acl_server, ns)
    with open_store(front, url, namespace=ns, partitions=2) as store:
        _exercise_api(store)
        if front == "sync":
            _exercise_projection_and_group(store)
        else:
            blocking = cast(BlockingAsyncStore, store)
            blocking.runner.run(_exercise_async_projection_and_group(blocking.async_store))
    _exercise_cli(url, ns)
    # nothing else was refused along the way: CONFIG GET is tried on open (then INFO is
    # read instead), and redis-py swallows a refused CLIENT SETINFO (7.0 has none)
    refused = {e["object"] for e in acl_server.admin.acl_log() if e["username"] == f"app-{ns}"}
    assert refused <= {"config|get", "config", "client|setinfo", "client"}, refused


def _denied(excinfo: pytest.ExceptionInfo[PermissionDenied], user: str) -> PermissionDenied:
    error = excinfo.value
    assert error.user == user
    assert f"Redis user {user!r} lacks the permission {error.permission}" in str(error)
    return error


def test_a_command_refused_inside_the_append_script_is_named(
    acl_server: AclServer, ns: str, front: Front
) -> None:
    tokens = acl_tokens(ns, redis_version=acl_server.version)
    url = acl_server.user("no-xadd", [*tokens, "-xadd"])
    with open_store(front, url, namespace=ns) as store:
        with pytest.raises(PermissionDenied) as excinfo:
            store.append("Account", "a1", [Opened(owner="ann")], 0)
        error = _denied(excinfo, "no-xadd")
        assert (error.permission, error.command) == ("+xadd", "xadd")
        assert re.match(r"the append script, line \d+$", error.where)
        assert store.version_of("Account", "a1") == 0  # nothing was written


def test_a_top_level_command_is_named(acl_server: AclServer, ns: str, front: Front) -> None:
    tokens = acl_tokens(ns, redis_version=acl_server.version)
    url = acl_server.user("no-xrange", [*tokens, "-xrange"])
    with open_store(front, url, namespace=ns) as store:
        with pytest.raises(PermissionDenied) as excinfo:
            store.read("Account", "a1")
        error = _denied(excinfo, "no-xrange")
        assert error.permission == "+xrange"
        assert error.keys == (store.keys.stream("Account", "a1"),)


def test_keys_of_another_namespace_only(acl_server: AclServer, ns: str, front: Front) -> None:
    url = acl_server.user("other-ns", acl_tokens("other", redis_version=acl_server.version))
    with pytest.raises(PermissionDenied) as excinfo:
        open_store(front, url, namespace=ns)
    error = _denied(excinfo, "other-ns")
    assert error.permission == f"~{ns}:meta"
    result = run(url, ns, "stats", app=APP)
    assert result.exit_code == 1
    assert "'other-ns' lacks the permission" in result.stderr
    assert "other-ns-pw" not in result.output


def test_a_key_of_another_partition_is_named(acl_server: AclServer, ns: str, front: Front) -> None:
    # EVALSHA checks every KEYS entry before the script runs: the refusal is top level
    tokens = [t for t in acl_tokens(ns, redis_version=acl_server.version) if t[0] != "~"]
    url = acl_server.user("p0-only", [*tokens, f"~{{{ns}:p0}}:*", f"~{ns}:*"])
    with open_store(front, url, namespace=ns, partitions=2) as store:
        far = next(f"id{i}" for i in range(100) if store.keys.partition_of(f"id{i}") == 1)
        with pytest.raises(PermissionDenied) as excinfo:
            store.append("Account", far, [Opened(owner="ann")], 0)
        error = _denied(excinfo, "p0-only")
        assert error.keys[0] == store.keys.stream("Account", far)
        assert error.permission.startswith(f"~ on one of {error.keys[0]}, ")


def test_a_channel_refused_inside_the_append_script_is_named(
    acl_server: AclServer, ns: str, front: Front
) -> None:
    tokens = [t for t in acl_tokens(ns, redis_version=acl_server.version) if t[0] != "&"]
    url = acl_server.user("no-channels", [*tokens, "resetchannels"])
    listener = acl_server.admin.pubsub()  # type: ignore[no-untyped-call, unused-ignore]
    with open_store(front, url, namespace=ns) as store:
        channel = store.live_channels.for_append("Account", "a1")
        listener.subscribe(channel)  # the script publishes only when someone listens
        wait_for(lambda: listener.get_message(timeout=0.05) is not None)
        with pytest.raises(PermissionDenied) as excinfo:
            store.append("Account", "a1", [Opened(owner="ann")], 0)
        error = _denied(excinfo, "no-channels")
        assert (error.permission, error.channel) == (f"&{channel}", channel)
        assert error.command == "publish"
    listener.close()


def test_without_info_opening_names_it(acl_server: AclServer, ns: str, front: Front) -> None:
    tokens = acl_tokens(ns, redis_version=acl_server.version)
    url = acl_server.user("no-info", [*tokens, "-info"])
    with pytest.raises(PermissionDenied) as excinfo:
        open_store(front, url, namespace=ns)
    assert _denied(excinfo, "no-info").permission == "+info"


SCRIPT = "local a = 1\nredis.call('XADD', KEYS[2], '*', 'k', 'v')\n"
# what 6.2, 7.0 and 8.2 answered when a script touched a key outside the user's patterns
SCRIPT_KEY_REFUSALS = [
    (
        "Error running script (call to f_3b0b): @user_script:2: @user_script: 2: The user "
        "executing the script can't access at least one of the keys mentioned in the command "
        "arguments"
    ),
    (
        "The user executing the script can't access at least one of the keys mentioned in the "
        "command arguments script: 3b0b, on @user_script:2."
    ),
    "ACL failure in script: No permissions to access a key script: 3b0b, on @user_script:2.",
]


@pytest.mark.parametrize("message", SCRIPT_KEY_REFUSALS)
def test_a_key_refused_inside_a_script_names_its_keys_entry(message: str) -> None:
    denied = permission_denied(message, user="u", keys=("k1", "k2"), script=("x", SCRIPT))
    assert denied is not None
    assert (denied.permission, denied.keys, denied.command) == ("~k2", ("k2",), "xadd")
    assert denied.where == "the x script, line 2"
    assert permission_denied("ERR wrong number of arguments", user="u") is None


def _admin_url(server: AclServer) -> str:
    return f"redis://admin:admin-pw@127.0.0.1:{server.server.port}/0"


def _rights(server: AclServer, user: str) -> str:
    reply = server.admin.acl_getuser(user)
    assert reply is not None
    commands = reply["commands"]
    return commands.decode() if isinstance(commands, bytes) else str(commands)


def test_the_acl_command_prints_the_rule_of_the_server_it_talks_to(
    acl_server: AclServer, ns: str
) -> None:
    data = run_json(_admin_url(acl_server), ns, "acl", app=None)
    assert data["rule"] == acl_rule(ns, redis_version=acl_server.version)
    assert data["redis_version"].startswith(".".join(map(str, acl_server.version)))
    assert data["applied"] is None
    older = run_json(_admin_url(acl_server), ns, "acl", "--redis-version", "6.2", app=None)
    assert older["rule"] == acl_rule(ns, redis_version=(6, 2))
    extra = run_json(
        _admin_url(acl_server), ns, "acl", "--read-config", "--command", "RPUSH", app=None
    )
    assert extra["rule"] == acl_rule(
        ns, redis_version=acl_server.version, read_config=True, extra_commands=["RPUSH"]
    )
    human = run(_admin_url(acl_server), ns, "acl", app=None)
    assert human.stdout.strip() == data["rule"]  # one line to paste


def test_acl_apply_creates_a_user_that_can_run_the_store(
    acl_server: AclServer, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f"app-{ns}"
    monkeypatch.setenv("APP_PW", "s3cret-pw")
    data = run_json(
        _admin_url(acl_server), ns, "acl", "--apply", user, "--password-env", "APP_PW", app=None
    )
    assert data["applied"] == {"user": user, "nodes": [None]}
    app_url = f"redis://{user}:s3cret-pw@127.0.0.1:{acl_server.server.port}/0"
    with EventStore.from_url(app_url, namespace=ns) as store:
        store.append("Account", "a1", [Opened(owner="ann")], 0)
        assert [e.event for e in store.read("Account", "a1")] == [Opened(owner="ann")]
    # applied again (no password given): rights replaced, the password kept
    acl_server.admin.execute_command("ACL", "SETUSER", user, "+flushall")  # type: ignore[no-untyped-call]
    assert "+flushall" in _rights(acl_server, user)
    run_json(_admin_url(acl_server), ns, "acl", "--apply", user, app=None)
    assert "+flushall" not in _rights(acl_server, user)
    with EventStore.from_url(app_url, namespace=ns) as store:
        assert store.last_position(store.keys.partition_of("a1")) == 1
    assert "s3cret-pw" not in run(_admin_url(acl_server), ns, "acl", "--apply", user).output
    # the application's own user may not create users: a one-line PermissionDenied
    refused = run(app_url, ns, "acl", "--apply", "intruder", app=None)
    line = one_line_error(refused)
    assert f"Redis user {user!r} lacks" in line
    assert "acl" in line
    assert acl_server.admin.acl_getuser("intruder") is None


def test_acl_password_env_must_be_set_and_go_with_apply(
    acl_server: AclServer, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_PW", raising=False)
    unset = run(_admin_url(acl_server), ns, "acl", "--apply", "x", "--password-env", "NO_SUCH_PW")
    assert unset.exit_code == 2
    assert "$NO_SUCH_PW is not set" in unset.output
    alone = run(_admin_url(acl_server), ns, "acl", "--password-env", "HOME")
    assert alone.exit_code == 2
    bad = run(_admin_url(acl_server), ns, "acl", "--redis-version", "seven")
    assert bad.exit_code == 2
