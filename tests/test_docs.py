"""The docs stay true: examples run, and every code block in the docs is a tested one.

- every ``docs/examples/*.py`` runs as a program against a test server and exits 0
  (a server example is run by its own test file instead);
- every ```python block in ``docs/*.md`` is an excerpt of one of those files (so the
  code people read is code that ran);
- the README quickstart runs exactly as written, with only the URL pointed at the server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.py"))
SERVERS = {"web_app"}
"""Examples that serve until stopped: tests/test_web_app.py runs each one as a server
(and as a program, stopped with Ctrl-C) instead of waiting here for it to exit."""
PROGRAMS = [path for path in EXAMPLES if path.stem not in SERVERS]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _run(args: list[str], url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVENTSTORE_URL": url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("example", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_example_runs(example: Path, redis_url: str, tmp_path: Path) -> None:
    done = _run([sys.executable, str(example)], redis_url, tmp_path)
    assert done.returncode == 0, f"{example.name} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), f"{example.name} printed nothing"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _contains(haystack: list[str], needle: list[str]) -> bool:
    return any(haystack[i : i + len(needle)] == needle for i in range(len(haystack)))


PAGES = sorted(DOCS.glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_doc_code_blocks_are_tested_examples(page: Path) -> None:
    sources = [_lines(p.read_text()) for p in EXAMPLES]
    for block in BLOCK.findall(page.read_text()):
        needle = _lines(block)
        assert any(_contains(source, needle) for source in sources), (
            f"{page.name}: this block is not an excerpt of docs/examples/*.py:\n{block}"
        )


def test_readme_quickstart_runs_as_written(redis_url: str, tmp_path: Path) -> None:
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    code = "\n".join(blocks[:2])
    assert "redis://127.0.0.1:6379/0" in code
    script = tmp_path / "readme_quickstart.py"
    script.write_text(code.replace("redis://127.0.0.1:6379/0", redis_url))
    done = _run([sys.executable, str(script)], redis_url, tmp_path)
    assert done.returncode == 0, done.stderr
