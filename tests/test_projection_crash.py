"""A projection process SIGKILLed at random points never applies an event twice.

The handler's writes are not idempotent (INCRBY), so a model write committed without
its checkpoint (or the reverse) would show up as a wrong sum after the restarts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventstore import EventStore, Projection
from tests.domain import Deposited

ROOT = Path(__file__).resolve().parent.parent

WORKER = """
import sys, time
from eventstore import EventStore, Projection
from tests.domain import Deposited

store = EventStore.from_url(sys.argv[1], namespace=sys.argv[2])
projection = Projection(store, "totals", page_size=int(sys.argv[3]))

@projection.on(Deposited)
def _deposited(event, ctx):
    ctx.pipe.incrby(ctx.key("sum"), event.amount)
    ctx.pipe.incr(ctx.key("count"))
    time.sleep(0.0005)  # slow enough to be killed in the middle of a page

projection.run(until_caught_up=True)
store.close()
"""

EVENTS = 600


def _progress(store: EventStore) -> int:
    return int(store.client.hget(store.keys.checkpoints(0), "projection:totals:v1") or 0)


def _start(script: Path, url: str, namespace: str, page_size: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(script), url, namespace, str(page_size)], cwd=ROOT, env=env
    )


@pytest.mark.slow
@pytest.mark.parametrize("page_size", [1, 7])
def test_sigkilled_projection_never_double_applies(
    store: EventStore, redis_url: str, namespace: str, tmp_path: Path, page_size: int
) -> None:
    for start in range(0, EVENTS, 100):
        store.append("Account", f"a{start}", [Deposited(amount=n + 1) for n in range(100)], 0)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)

    kills = 0
    for _ in range(4):
        before = _progress(store)
        worker = _start(script, redis_url, namespace, page_size)
        deadline = time.monotonic() + 30
        while _progress(store) == before and worker.poll() is None:
            assert time.monotonic() < deadline, "worker made no progress"
            time.sleep(0.002)
        time.sleep(0.01 * kills)
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        worker.wait(30)

    final = _start(script, redis_url, namespace, page_size)
    assert final.wait(60) == 0
    assert kills >= 2, "the worker finished before it could be killed"

    totals = Projection(store, "totals")
    assert _progress(store) == EVENTS
    assert int(store.client.get(totals.key("count")) or 0) == EVENTS
    assert int(store.client.get(totals.key("sum")) or 0) == 6 * sum(range(1, 101))


REFUSING_WORKER = """
import asyncio, os, signal, sys
from eventstore import AsyncEventStore, AsyncProjection, EventStore, Projection
from tests.domain import Deposited

url, namespace, front = sys.argv[1], sys.argv[2], sys.argv[3]


def handle(event, ctx):
    ctx.pipe.hset(ctx.key("seen"), str(ctx.record.position), event.amount)
    if event.amount == 5:
        ctx.pipe.rpush(ctx.key("fives"), ctx.record.position)  # WRONGTYPE until fixed


def die_after_a_refused_commit(reply):
    # the moment the checkpoint's fate is decided: nothing after the commit runs
    if reply[0] in (b"refused", "refused"):
        os.kill(os.getpid(), signal.SIGKILL)
    return reply


if front == "sync":
    store = EventStore.from_url(url, namespace=namespace)
    projection = Projection(store, "fives", page_size=4)
    projection.on(Deposited)(handle)
    real = projection._run_commit
    projection._run_commit = lambda keys, args: die_after_a_refused_commit(real(keys, args))
    projection.run(until_caught_up=True)
else:
    async def main():
        async with await AsyncEventStore.from_url(url, namespace=namespace) as store:
            projection = AsyncProjection(store, "fives", page_size=4)

            @projection.on(Deposited)
            async def _deposited(event, ctx):
                handle(event, ctx)

            real = projection._run_commit

            async def commit(keys, args):
                return die_after_a_refused_commit(await real(keys, args))

            projection._run_commit = commit
            await projection.run(until_caught_up=True)

    asyncio.run(main())
"""


@pytest.mark.parametrize("front", ["sync", "async"])
def test_a_runner_killed_after_a_refused_write_never_skips_its_event(
    store: EventStore, redis_url: str, namespace: str, tmp_path: Path, front: str
) -> None:
    """Redis refuses a model write (WRONGTYPE) in the middle of a page and the runner is
    SIGKILLed right after that commit: the checkpoint stands before the refused event,
    and once the data is fixed a new runner applies it and everything after it."""
    store.append("Account", "a1", [Deposited(amount=n) for n in range(1, 11)], 0)
    fives = Projection(store, "fives")
    store.client.set(fives.key("fives"), "not a list")
    script = tmp_path / "worker.py"
    script.write_text(REFUSING_WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(script), redis_url, namespace, front]

    killed = subprocess.run(command, cwd=ROOT, env=env, timeout=60, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert fives.checkpoint().position(0) == 4  # event 5 (page 5..8) is not skipped
    seen = {int(k) for k in store.client.hkeys(fives.key("seen"))}
    assert seen == {1, 2, 3, 4, 5}  # the refused write stopped the page's writes there

    store.client.delete(fives.key("fives"))  # the fix
    assert subprocess.run(command, cwd=ROOT, env=env, timeout=60, check=False).returncode == 0
    assert fives.checkpoint().position(0) == 10
    assert {int(k) for k in store.client.hkeys(fives.key("seen"))} == set(range(1, 11))
    assert store.client.lrange(fives.key("fives"), 0, -1) == [b"5"]
