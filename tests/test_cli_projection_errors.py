"""``projections status | list`` show the last failure a runner in another process recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore import EventStore, Projection, ProjectionContext, ProjectionError, Repository
from eventstore.examples.bank import Account, MoneyWithdrawn
from tests.cli_helpers import PICKY_APP, run, run_json, write_bank


def _run_failing_projection(redis_url: str, namespace: str, tmp_path: Path) -> str:
    """Run the picky projection in its own process; returns its stderr (it must fail)."""
    script = tmp_path / "picky_app.py"
    script.write_text(PICKY_APP)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    done = subprocess.run(
        [sys.executable, str(script), redis_url, namespace],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    return done.stderr


def _fixed(store: EventStore) -> Projection:
    picky = Projection(store, "picky")

    @picky.on(MoneyWithdrawn)
    def _withdrawn(event: MoneyWithdrawn, ctx: ProjectionContext) -> None:
        ctx.pipe.incrby(ctx.key("withdrawn"), event.amount)

    return picky


def test_status_shows_the_failure_of_another_process_until_it_is_passed(
    redis_url: str, namespace: str, store: EventStore, tmp_path: Path
) -> None:
    write_bank(store)  # alice withdraws 20 at version 4 (position 4): the first withdrawal
    stderr = _run_failing_projection(redis_url, namespace, tmp_path)
    assert "ProjectionError" in stderr
    status = run_json(redis_url, namespace, "projections", "status", "picky", app=None)
    (version,) = status["versions"]
    failure = version["last_error"]
    failed_at = failure.pop("failed_at")
    assert failure == {
        "error": {"type": "RuntimeError", "message": "cannot handle a withdrawal of 20"},
        "event_type": "MoneyWithdrawn", "stream": store.keys.stream("Account", "alice"),
        "version": 4, "partition": 0, "position": 4,
    }  # fmt: skip
    assert failed_at.endswith("+00:00")
    (listed,) = run_json(redis_url, namespace, "projections", "list", app=None)["projections"]
    assert listed["last_error"]["position"] == 4
    human = run(redis_url, namespace, "projections", "status", "picky", app=None)
    assert human.exit_code == 0
    assert "RuntimeError: cannot handle a withdrawal of 20" in human.stdout

    _fixed(store).run(until_caught_up=True)
    status = run_json(redis_url, namespace, "projections", "status", "picky", app=None)
    (version,) = status["versions"]
    assert (version["last_error"], version["caught_up"]) == (None, True)
    human = run(redis_url, namespace, "projections", "list", app=None)
    assert "RuntimeError" not in human.stdout


FIXED_APP = """
from eventstore import Projection
from eventstore.examples.bank import Account, MoneyWithdrawn


def eventstore_projections(store):
    picky = Projection(store, "picky")

    @picky.on(MoneyWithdrawn)
    def _withdrawn(event, ctx):
        ctx.pipe.incrby(ctx.key("withdrawn"), event.amount)

    return [picky]
"""


def test_a_rebuild_serves_a_version_without_the_failure_and_retires_the_failed_one(
    redis_url: str,
    namespace: str,
    store: EventStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_bank(store)
    _run_failing_projection(redis_url, namespace, tmp_path)
    module = f"fixed_app_{namespace}"
    (tmp_path / f"{module}.py").write_text(FIXED_APP)
    monkeypatch.chdir(tmp_path)  # --app imports from the current directory
    monkeypatch.syspath_prepend(str(tmp_path))
    rebuilt = run_json(redis_url, namespace, "projections", "rebuild", "picky", app=module)
    assert (rebuilt["version"], rebuilt["previous_version"]) == (2, 1)
    versions = run_json(redis_url, namespace, "projections", "status", "picky", app=None)
    failures = {v["version"]: v["last_error"] for v in versions["versions"]}
    assert failures[2] is None
    assert failures[1]["position"] == 4  # version 1 still stands at its failure
    again = run_json(
        redis_url, namespace, "projections", "rebuild", "picky", "--retire-old", app=module
    )
    assert (again["version"], again["retired_version"]) == (3, 2)
    listed = run_json(redis_url, namespace, "projections", "list", app=None)["projections"]
    assert [(v["version"], v["last_error"]) for v in listed] == [(1, failures[1]), (3, None)]


def test_lag_counts_only_what_a_trim_left_in_the_log(
    redis_url: str, namespace: str, store: EventStore
) -> None:
    write_bank(store)
    (trimmed,) = store.trim_log()  # nothing needs the log yet: positions 1..9 go
    assert trimmed.trimmed_to == 10
    accounts = Repository(store, Account)
    alice = accounts.get("alice")
    alice.deposit(5)
    alice.withdraw(1)
    accounts.save(alice)  # positions 10 and 11
    picky = Projection(store, "picky")

    @picky.on(MoneyWithdrawn)
    def _withdrawn(event: MoneyWithdrawn, ctx: ProjectionContext) -> None:
        raise RuntimeError("not yet")

    with pytest.raises(ProjectionError):
        picky.run(until_caught_up=True)  # registered at 0, after the trim
    assert picky.checkpoint().positions == (0,)
    (listed,) = run_json(redis_url, namespace, "projections", "list", app=None)["projections"]
    # positions 10 and 11 are still to apply; 1..9 are gone and can never be
    assert (listed["lag"], listed["caught_up"]) == (2, False)
    assert listed["partitions"] == [{"partition": 0, "position": 0, "head": 11, "lag": 2}]
    _fixed(store).run(until_caught_up=True)
    status = run_json(redis_url, namespace, "projections", "status", "picky", app=None)
    (version,) = status["versions"]
    assert (version["lag"], version["caught_up"]) == (0, True)
