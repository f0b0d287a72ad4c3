"""Output for people (rich tables, colours, progress bars) and for scripts (``--json``).

Human output goes to stdout; progress bars go to stderr and only on a terminal, so
``--json`` output and pipes stay clean. Errors are one line on stderr, and in ``--json``
mode also an ``{"error": ...}`` object on stdout.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

__all__ = ["Output", "Render", "compact_json", "make_table"]

Render = Callable[[Console], None]
Advance = Callable[[int], None]

# wide enough that tables piped to a file or a test runner are not folded
_PIPE_WIDTH = 200


class RateColumn(ProgressColumn):
    """Items per second (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        """The task's speed, once there is one."""
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "", style="progress.data.speed")


def compact_json(value: Any) -> str:
    """JSON on one line, for table cells and JSON lines."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def make_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A rich table with ``columns``; every cell is shown as text (markup escaped)."""
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(_cell(value)) for value in row))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return compact_json(value)
    return str(value)


class Output:
    """Where a command writes: ``result`` once, ``progress`` for long work, ``note`` to stderr."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        interactive = sys.stdout.isatty()
        self.console = Console(width=None if interactive else _PIPE_WIDTH, highlight=False)
        self.err = Console(stderr=True, highlight=False, width=None if interactive else _PIPE_WIDTH)

    def result(self, data: Any, render: Render) -> None:
        """Print ``data`` as JSON in ``--json`` mode, else call ``render`` for people."""
        if self.json_mode:
            sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()
        else:
            render(self.console)

    def json_line(self, data: Any) -> None:
        """One compact JSON object per line (streaming commands such as ``tail``)."""
        sys.stdout.write(compact_json(data) + "\n")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        """A remark for people on stderr (silent in ``--json`` mode)."""
        if not self.json_mode:
            self.err.print(text)

    def error(self, line: str, kind: str) -> None:
        """Report a failure: one line on stderr, plus a JSON object on stdout with ``--json``."""
        sys.stderr.write(f"error: {line}\n")
        sys.stderr.flush()
        if self.json_mode:
            self.json_line({"error": {"type": kind, "message": line}})

    @property
    def shows_progress(self) -> bool:
        """Progress bars only for a person at a terminal."""
        return not self.json_mode and self.err.is_terminal

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Advance]:
        """A bar with rate and ETA on a terminal; a no-op elsewhere."""
        if not self.shows_progress:
            yield lambda _n: None
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
