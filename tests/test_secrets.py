"""Secrets never leak: a password in the URL stays out of reprs, errors, logs and CLI
output; and no code path unpickles or evaluates stored data."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from eventstore import EventStore, redact_url
from eventstore._core.redact import redact_text, url_secrets
from eventstore.cli import cli
from eventstore.testing import RedisServer, free_port

SECRET = "S3cretPass"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def locked() -> Iterator[RedisServer]:
    server = RedisServer(config={"requirepass": SECRET})
    server.client = lambda: redis.Redis(port=server.port, password=SECRET)  # type: ignore[method-assign]
    server.start()
    try:
        yield server
    finally:
        server.close()


def _urls(server: RedisServer) -> dict[str, str]:
    port = server.port
    return {
        "right": f"redis://default:{SECRET}@127.0.0.1:{port}/0",
        "wrong password": f"redis://default:{SECRET}x@127.0.0.1:{port}/0",
        "wrong port": f"redis://default:{SECRET}@127.0.0.1:{free_port()}/0",
        "query": f"redis://127.0.0.1:{port}/0?password={SECRET}",
    }


def test_redact_url_hides_passwords() -> None:
    assert redact_url(f"redis://app:{SECRET}@h:1/0") == "redis://app:***@h:1/0"
    assert redact_url(f"rediss://:{SECRET}@h:1") == "rediss://:***@h:1"
    assert redact_url(f"redis://h:1/0?password={SECRET}&db=2") == "redis://h:1/0?password=***&db=2"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
    assert redact_url(f"redis://a:{SECRET}@h:notaport/0") == "redis://a:***@h:notaport/0"


@given(
    password=st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="@/?#"),
        min_size=1,
    )
)
def test_redacted_urls_never_hold_the_password(password: str) -> None:
    url = f"redis://app:{password}@127.0.0.1:6379/0"
    assert redact_url(url) == "redis://app:***@127.0.0.1:6379/0"
    assert password in url_secrets(url)
    assert password not in redact_text(f"failed: {url}", *url_secrets(url)).replace("***", "")


def test_the_api_never_shows_the_password(
    locked: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    failed: list[str] = []
    for name, url in _urls(locked).items():
        try:
            with EventStore.from_url(url, namespace="sec", socket_connect_timeout=1) as store:
                seen += [repr(store), repr(store.client), str(store.server)]
                store.read("Account", "a1")
        except redis.RedisError as exc:
            failed.append(name)
            seen += [str(exc), repr(exc)]
    seen += [record.getMessage() for record in caplog.records]
    assert failed == ["wrong password", "wrong port"]
    assert any("127.0.0.1" in text for text in seen)
    assert not [text for text in seen if SECRET in text]


@pytest.mark.parametrize(
    "command", [["stats"], ["doctor"], ["log"], ["verify"], ["stats", "--json"]]
)
def test_the_cli_never_shows_the_password(locked: RedisServer, command: list[str]) -> None:
    with EventStore.from_url(_urls(locked)["right"], namespace="sec") as store:
        store.client.hset(store.keys.meta, "partitions", 1)
    for name, url in _urls(locked).items():
        result = CliRunner().invoke(cli, ["--url", url, "-n", "sec", *command])
        output = result.stdout + result.stderr
        assert SECRET not in output, (name, output)
        if name.startswith("wrong"):
            assert result.exit_code == 1, output
            assert "redis://default:***@127.0.0.1:" in result.stderr


# -- nothing stored is unpickled or evaluated ---------------------------------------------

_UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "jsonpickle"}
_UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}
# Lua: the store runs only its own scripts from eventstore/_redis/lua (EVALSHA), and
# `doctor` probes scripting with the constant "return 1" the same way; no Redis EVAL
# (`client.eval(...)`) exists in the code, so any `.eval(` call is flagged too.


def _sources() -> list[Path]:
    return sorted([*(ROOT / "eventstore").rglob("*.py"), *(ROOT / "aggregates").rglob("*.py")])


def _problems(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name in _UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "") in _UNSAFE_MODULES:
            found.append(f"from {node.module} import")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in _UNSAFE_CALLS:
                found.append(f"{func.id}() at line {node.lineno}")
            if isinstance(func, ast.Attribute) and func.attr in {"eval", "loads"}:
                owner = ast.unparse(func.value)
                if func.attr == "eval" or owner in _UNSAFE_MODULES:
                    found.append(f"{owner}.{func.attr}() at line {node.lineno}")
    return [f"{path.relative_to(root)}: {problem}" for problem in found]


def test_no_module_unpickles_or_evaluates_data() -> None:
    sources = _sources()
    assert len(sources) > 40
    assert [problem for path in sources for problem in _problems(path)] == []


def test_the_checker_finds_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nfrom marshal import loads\neval(x)\nclient.eval('1', 0)\n")
    problems = _problems(bad, tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "import pickle",
        "from marshal import",
        "eval() at line 3",
        "client.eval() at line 4",
    ]
