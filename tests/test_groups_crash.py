"""A worker process killed with SIGKILL mid-handler loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from eventstore import EventStore, RecordedEvent
from tests.domain import Deposited
from tests.waiting import wait_for

# the same tests on one server and on a Redis Cluster (one partition per slot)
pytestmark = pytest.mark.also_on_cluster
ROOT = Path(__file__).resolve().parent.parent
CLAIM_IDLE = timedelta(milliseconds=200)

# The doomed worker: records each attempt, takes its time, then applies an idempotent
# effect (SADD decides whether the effect happens: a redelivery is a no-op).
CHILD = """
import sys, time
from datetime import timedelta
import tests.domain  # registers the event classes
from eventstore import EventStore

url, namespace = sys.argv[1:3]
store = EventStore.from_url(url, namespace=namespace)

def handler(recorded):
    store.client.rpush(namespace + ":attempts", recorded.event_id)
    time.sleep(0.05)
    if store.client.sadd(namespace + ":done", recorded.event_id):
        store.client.incr(namespace + ":effects")

group = store.consumer_group("crashy")
group.worker("doomed", handler, claim_idle=timedelta(milliseconds=200)).run()
"""


@pytest.mark.slow
def test_killed_worker_loses_nothing(redis_url: str, namespace: str) -> None:
    store = EventStore.from_url(redis_url, namespace=namespace, partitions=2)
    try:
        ids = [f"e{i}" for i in range(20)]
        for i, event_id in enumerate(ids):
            store.append("Account", f"a{i}", [Deposited(amount=1)], 0, event_ids=[event_id])
        group = store.consumer_group("crashy")
        attempts, done = f"{namespace}:attempts", f"{namespace}:done"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, redis_url, namespace],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            wait_for(lambda: int(store.client.llen(attempts)) >= 4)
        finally:
            child.kill()  # SIGKILL: no cleanup, no acknowledgement, no release
            child.wait(timeout=10)
        raw = store.client.lindex(attempts, -1)
        assert isinstance(raw, bytes)
        in_hand = raw.decode()
        assert not store.client.sismember(done, in_hand)  # it died inside the handler
        assert group.pending() > 0

        def handler(recorded: RecordedEvent) -> None:
            store.client.rpush(attempts, recorded.event_id)
            if store.client.sadd(done, recorded.event_id):
                store.client.incr(f"{namespace}:effects")

        survivor = group.worker("survivor", handler, claim_idle=CLAIM_IDLE)
        stats = survivor.run(stop_when_idle=True)
        assert stats.claimed >= 1
        tried = [_text(value) for value in store.client.lrange(attempts, 0, -1)]
        assert set(tried) == set(ids)  # at least once
        assert tried.count(in_hand) == 2  # the one in hand was handled again
        assert int(store.client.get(f"{namespace}:effects") or 0) == len(ids)  # exactly once
        assert (group.lag(), group.pending(), group.dead_letters()) == (0, 0, [])
    finally:
        store.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
