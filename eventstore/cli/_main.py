"""The root ``eventstore`` command: global options, error reporting, the command list."""

from __future__ import annotations

from typing import Any

import click

from eventstore._core.redact import redact_text, url_secrets
from eventstore._redis.clients import as_cluster_url
from eventstore.cli import (
    _acl,
    _aggregates,
    _demo,
    _doctor,
    _groups,
    _log,
    _projections,
    _snapshots,
    _stats,
    _verify,
)
from eventstore.cli._errors import describe
from eventstore.cli._state import CliState

__all__ = ["cli", "main"]


class _RootGroup(click.Group):
    """Turns every failure into one line and exit status 1 (tracebacks only with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; report a failure as one line and exit 1."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            state = ctx.find_object(CliState)
            if state is None or state.debug:
                raise
            message = describe(exc, state.where, state.server)
            # a password in --url never reaches the terminal, whatever the message quotes
            message = redact_text(message, *url_secrets(state.url or ""))
            state.out.error(message, type(exc).__name__)
            ctx.exit(1)


@click.group(cls=_RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="EVENTSTORE_URL",
    default=None,
    metavar="URL",
    help="redis://, rediss:// or unix:// URL [env EVENTSTORE_URL; default: the embedded "
    "server under ./.eventstore].",
)
@click.option(
    "--namespace",
    "-n",
    envvar="EVENTSTORE_NAMESPACE",
    default="es",
    show_default=True,
    help="Namespace of the store [env EVENTSTORE_NAMESPACE].",
)
@click.option(
    "--app",
    "apps",
    multiple=True,
    envvar="EVENTSTORE_APP",
    metavar="MODULE[:ATTR]",
    help="Import your domain code so its aggregates, events and projections are known "
    "(repeatable) [env EVENTSTORE_APP].",
)
@click.option(
    "--tls-ca",
    envvar="EVENTSTORE_TLS_CA",
    metavar="PEM",
    help="CA certificate(s) to verify a rediss:// server with [env EVENTSTORE_TLS_CA].",
)
@click.option(
    "--tls-cert",
    envvar="EVENTSTORE_TLS_CERT",
    metavar="PEM",
    help="Client certificate, for servers with tls-auth-clients [env EVENTSTORE_TLS_CERT].",
)
@click.option(
    "--tls-key",
    envvar="EVENTSTORE_TLS_KEY",
    metavar="PEM",
    help="The client certificate's private key [env EVENTSTORE_TLS_KEY].",
)
@click.option(
    "--cluster",
    is_flag=True,
    envvar="EVENTSTORE_CLUSTER",
    help="--url names one node of a Redis Cluster (the same as a redis+cluster:// URL) "
    "[env EVENTSTORE_CLUSTER].",
)
@click.option("--json", "json_mode", is_flag=True, help="JSON output on every command.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="redis-eventstore", prog_name="eventstore")
@click.pass_context
def cli(
    ctx: click.Context,
    *,
    url: str | None,
    namespace: str,
    apps: tuple[str, ...],
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    cluster: bool,
    json_mode: bool,
    debug: bool,
) -> None:
    """Inspect, replay, verify and operate a redis-eventstore.

    Exit status: 0 success, 1 failure (or problems found), 2 usage error.
    """
    given = {"ssl_ca_certs": tls_ca, "ssl_certfile": tls_cert, "ssl_keyfile": tls_key}
    tls = {name: value for name, value in given.items() if value}
    if cluster:
        if not url:
            raise click.UsageError("--cluster needs --url (any node of the cluster)")
        try:
            url = as_cluster_url(url)
        except ValueError as exc:
            raise click.UsageError(f"--cluster: {exc}") from exc
    ctx.obj = CliState(url or None, namespace, apps, json_mode, debug, tls=tls)


def main() -> None:
    """Console-script entry point (``eventstore``)."""
    cli(prog_name="eventstore")


for _module in (
    _demo, _aggregates, _log, _snapshots, _projections, _groups, _verify, _stats, _doctor,
    _acl,
):  # fmt: skip
    for _command in _module.COMMANDS:
        cli.add_command(_command)
