"""The global options of a CLI run and the store they open (lazily, closed at exit)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import click
import redis
from redis.cluster import RedisCluster

from eventstore._core.keys import KeySchema
from eventstore._core.redact import redact_url
from eventstore._redis.clients import DEFAULT_SOCKET_TIMEOUT
from eventstore._redis.embedded import EmbeddedServer
from eventstore._redis.store import EventStore
from eventstore.cli._domain import Domain, load_domain
from eventstore.cli._errors import CliError
from eventstore.cli._output import Output

__all__ = ["EMBEDDED_PATH", "CliState", "redact", "state_of"]

EMBEDDED_PATH = ".eventstore"


def redact(url: str) -> str:
    """The URL with its password hidden, safe to print."""
    return redact_url(url)


class CliState:
    """Global options (``--url``, ``--namespace``, ``--app``, ``--json``, ``--debug``)."""

    def __init__(
        self,
        url: str | None,
        namespace: str,
        apps: tuple[str, ...],
        json_mode: bool,
        debug: bool,
        *,
        tls: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.tls = tls or {}  # redis-py ssl_* options from --tls-ca/--tls-cert/--tls-key
        self.namespace = namespace
        self.apps = apps
        self.json_mode = json_mode
        self.debug = debug
        self._store: EventStore | None = None
        self._domain: Domain | None = None
        self._output: Output | None = None
        self._client: redis.Redis | None = None

    @property
    def server(self) -> str:
        """The server, as people should read it in messages (no password)."""
        return redact(self.url) if self.url else f"the embedded server under ./{EMBEDDED_PATH}"

    @property
    def where(self) -> str:
        """The store, as people should read it in messages."""
        return f"namespace {self.namespace!r} at {self.server}"

    @property
    def out(self) -> Output:
        """Where this run writes (follows ``--json``, which a command may set late)."""
        if self._output is None or self._output.json_mode != self.json_mode:
            self._output = Output(self.json_mode)
        return self._output

    def domain(self) -> Domain:
        """The user's domain code from ``--app`` (imported once)."""
        if self._domain is None:
            self._domain = load_domain(self.apps)
        return self._domain

    def store(self, *, create: bool = False, check: bool = True) -> EventStore:
        """The store of the namespace; it must exist unless ``create``."""
        if self._store is None:
            self.domain()  # event classes must be registered before anything is decoded
            self._store = self._open(create=create, check=check)
            click.get_current_context().find_root().call_on_close(self.close)
        return self._store

    def client(self) -> redis.Redis:
        """A client for server-level commands (``doctor``): no namespace needed."""
        if self._client is None:
            if self.url is None:
                self._client = self._embedded_client()
            else:
                self._client = _client(self.url, **self.tls)
                click.get_current_context().find_root().call_on_close(self._client.close)
        return self._client

    def _embedded_client(self) -> redis.Redis:
        server = self._embedded_server(create=False)
        name = f"eventstore-cli-{os.getpid()}"
        client = _client(server.url, client_name=name)

        def release() -> None:
            """Close the client, then stop the server if nobody else uses it."""
            client.close()
            server.shutdown_if_unused(name)

        click.get_current_context().find_root().call_on_close(release)
        return client

    def _embedded_server(self, *, create: bool) -> EmbeddedServer:
        if not create and not Path(EMBEDDED_PATH).is_dir():
            raise CliError(
                f"no event store here: ./{EMBEDDED_PATH} does not exist",
                "run 'eventstore demo' to create one, or pass --url (or set EVENTSTORE_URL)",
            )
        server = EmbeddedServer(EMBEDDED_PATH)
        server.ensure_running()
        return server

    def close(self) -> None:
        """Close the store (which stops an embedded server nobody else uses)."""
        if self._store is not None:
            store, self._store = self._store, None
            store.close()

    def _open(self, *, create: bool, check: bool) -> EventStore:
        if self.url is None:
            server = self._embedded_server(create=create)
            if not create:
                self._require_namespace(server.url, shutdown=server)
            return EventStore.embedded(EMBEDDED_PATH, namespace=self.namespace)
        if not create:
            self._require_namespace(self.url)
        client = _client(self.url, **self.tls)
        try:
            return EventStore.open(client, namespace=self.namespace, check=check)
        except BaseException:
            client.close()
            raise

    def _require_namespace(self, url: str, shutdown: EmbeddedServer | None = None) -> None:
        name = f"eventstore-cli-check-{os.getpid()}"
        client = _client(url, client_name=name, **(self.tls if shutdown is None else {}))
        try:
            if client.exists(KeySchema(self.namespace).meta):
                return
            known = _namespaces(client)
        finally:
            client.close()
        if shutdown is not None:
            shutdown.shutdown_if_unused(name)
        raise CliError(
            f"namespace {self.namespace!r} does not exist at "
            f"{redact(url) if shutdown is None else f'./{EMBEDDED_PATH}'}"
            f" (namespaces there: {', '.join(known) or 'none'})",
            "pass --namespace with one of them, or write events first",
        )


_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")


def _client(url: str, **options: Any) -> redis.Redis:
    """A client for ``url`` (``redis+cluster://`` is a Redis Cluster, as for ``from_url``)."""
    scheme, sep, rest = url.partition("://")
    if scheme not in _SCHEMES or not sep:
        raise CliError(
            f"--url {redact(url)!r} is not a Redis URL",
            "use redis://host:port/db, rediss://..., unix:///path/to/redis.sock "
            "or redis+cluster://host:port",
        )
    options.update(socket_timeout=DEFAULT_SOCKET_TIMEOUT, socket_connect_timeout=5.0)
    if scheme.endswith("+cluster"):
        options.pop("client_name", None)  # a cluster client names no connection
        plain = f"{scheme.removesuffix('+cluster')}://{rest}"
        return cast(redis.Redis, RedisCluster.from_url(plain, **options))
    return redis.Redis.from_url(url, **options)


def _namespaces(client: redis.Redis) -> list[str]:
    # SCAN is fine here: this runs once, on an error path, never on a hot path
    found = set()
    for key in client.scan_iter(match="*:meta", count=1000):
        text = key.decode() if isinstance(key, bytes) else str(key)
        found.add(text.removesuffix(":meta"))
    return sorted(found)[:20]


def state_of(ctx: click.Context) -> CliState:
    """The run's ``CliState`` (created by the root group)."""
    found = ctx.find_object(CliState)
    if found is None:
        raise RuntimeError("eventstore commands run under the root group")
    return found
