"""The ``eventstore`` command line: replay, inspect, verify and operate a store.

``main`` is the console script; ``cli`` is the click group (for ``CliRunner`` in tests).
Run ``eventstore --help``, or see docs/cli.md for an example session of every command.
"""

from eventstore.cli._main import cli, main

__all__ = ["cli", "main"]
