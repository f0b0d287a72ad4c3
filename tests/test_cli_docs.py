"""docs/cli.md is an example session: replay it on the demo's data, as a new user would.

Each ``$ eventstore ...`` line of the page runs, in order, in an empty directory on the
embedded server (the page's setting). A command whose documented output starts with
``error:`` must fail with exit 1 and one error line; every other must exit 0 and, where
the page shows JSON, print JSON with at least the documented top-level keys. Lines that
need a setup the page only describes (planted damage, another host, a cluster, a
projection of the reader's own) are listed in SKIP with the reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
SKIP = {
    "careless-host": "needs a server configured unsafely on another host",
    "redis+cluster": "needs a cluster on port 7000",
    "picky": "a projection of the reader's own, described on the page",
}

pytestmark = pytest.mark.slow


def _session() -> list[tuple[str, list[str]]]:
    """(command, documented output lines) for every ``$ eventstore`` line of the page."""
    steps: list[tuple[str, list[str]]] = []
    in_code = False
    for line in PAGE.read_text().splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
            continue
        text = line.strip()
        if in_code and text.startswith("$ "):
            steps.append((text[2:], []))
        elif in_code and steps:
            steps[-1][1].append(line.rstrip())
    return steps


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSTORE_")}
    env["EVENTSTORE_APP"] = "eventstore.examples.bank"
    args = command.split()
    args[0] = str(Path(sys.executable).parent / "eventstore")
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _json_keys(lines: list[str]) -> set[str]:
    text = "\n".join(
        line.removeprefix("  ") if lines[0].startswith("  ") else line for line in lines
    )
    if not text.startswith("{"):
        return set()
    return set(re.findall(r'^\s{0,2}"([a-z_]+)":', text, re.M)) | set(
        re.findall(r'^\{"([a-z_]+)":', text, re.M)
    )


def test_the_cli_page_replays_on_the_demo_data(tmp_path: Path) -> None:
    dead_letter = ""
    verified_once = False
    ran = 0
    for documented_command, documented in _session():
        command = documented_command
        if command.startswith("export "):
            continue
        if any(marker in command for marker in SKIP):
            continue
        if command == "eventstore verify" and verified_once:
            continue  # the second one is after planting damage by hand
        verified_once = verified_once or command == "eventstore verify"
        if command.startswith("eventstore dlq") and re.search(r"\d+:\d+-\d+", command):
            command = re.sub(r"\d+:\d+-\d+", dead_letter, command)
        done = _run(command, tmp_path)
        ran += 1
        failure = f"$ {command}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
        if documented and documented[0].lstrip().startswith("error:"):
            assert done.returncode == 1, failure
            assert done.stderr.startswith("error:"), failure
            assert len(done.stderr.strip().splitlines()) == 1, failure
            continue
        assert done.returncode == 0, failure
        if "--json" in command:
            shown = json.loads(done.stdout)
            assert _json_keys(documented) <= set(shown), failure
        if command == "eventstore dlq list audit":
            listed = json.loads(_run("eventstore dlq list audit --json", tmp_path).stdout)
            dead_letter = listed["dead_letters"][0]["id"]
    assert ran >= 25, f"only {ran} commands of {PAGE.name} ran"
