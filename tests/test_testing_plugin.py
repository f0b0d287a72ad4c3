"""The pytest plugin (entry point ``pytest11``): users' tests get a server and a store.

Each test writes a user's test file and runs pytest on it in-process (``pytester``), with
no conftest: the fixtures come from the installed entry point alone.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
from pathlib import Path

from aggregates import Aggregate, DomainEvent, projector
from eventstore import EventStore, Repository
from eventstore.testing import RedisServer


class PlNamed(DomainEvent):
    name: str


class Pet(Aggregate):
    name: str = ""

    def rename(self, name: str) -> None:
        self.trigger(PlNamed(name=name))

    @projector(PlNamed)
    def _named(self, event: PlNamed) -> None:
        self.name = event.name


def test_a_pet_is_saved_and_loaded(event_store: EventStore) -> None:
    pets = Repository(event_store, Pet)
    pet = Pet(id="rex")
    pet.rename("Rex")
    pets.save(pet)
    assert pets.get("rex").name == "Rex"


def test_each_test_gets_its_own_namespace(event_store: EventStore) -> None:
    assert event_store.version_of("Pet", "rex") == 0


def test_the_server_is_private(redis_server: RedisServer) -> None:
    client = redis_server.client()
    assert client.ping()
    Path("port.txt").write_text(str(redis_server.port))
    client.close()
"""


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_users_get_redis_server_and_event_store(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    port = int((pytester.path / "port.txt").read_text())
    assert _refused(port), f"the session's redis-server on port {port} was not stopped"


def test_the_fixtures_are_listed_with_their_docs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_nothing() -> None:\n    pass\n")
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines(
        [
            "*redis_server* -- *pytest_plugin.py*",
            "*A private redis-server for the test session*",
            "*event_store* -- *pytest_plugin.py*",
            "*An ``EventStore`` on the session's server*",
        ]
    )


def test_the_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("eventstore") == "eventstore.testing.pytest_plugin"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )


def test_eventstore_never_needs_hypothesis() -> None:
    done = _python(
        """
        import sys
        import eventstore, eventstore.testing
        from eventstore.testing import scenario, RedisServer
        import eventstore.testing.pytest_plugin
        assert "hypothesis" not in sys.modules, "hypothesis was imported"
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_missing_extra_is_named() -> None:
    done = _python(
        """
        import sys
        sys.modules["hypothesis"] = None  # as if it were not installed
        from eventstore.testing import scenario
        try:
            from eventstore.testing import check_aggregate
        except ImportError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "eventstore.testing.check_aggregate needs hypothesis: "
        "pip install 'redis-eventstore[testing]'"
    )
