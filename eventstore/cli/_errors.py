"""CLI failures as one clear line: what went wrong, where, and what to do about it."""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

from aggregates import AggregateError
from eventstore._core.errors import (
    AggregateNotFound,
    ConfigurationError,
    EventStoreError,
    StoredDataError,
    UnknownEventType,
)
from eventstore._core.permissions import permission_denied

__all__ = ["CliError", "describe"]


class CliError(Exception):
    """A failure the CLI explains itself: ``message`` says what and where, ``hint`` what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}; {hint}" if hint else message)


def describe(exc: BaseException, where: str, server: str) -> str:
    """One line for ``exc`` raised while working on ``where`` (a namespace on ``server``)."""
    # multi-line server messages become one line; a final period would clash with "; "
    text = " ".join(str(exc).split()).rstrip(".")
    if isinstance(exc, CliError):
        return text
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        if server.startswith("rediss") and not isinstance(exc, redis.AuthenticationError):
            return (
                f"cannot reach Redis at {server}: {text}; check that the server runs, that "
                "--tls-ca holds the CA of its certificate, and give --tls-cert and --tls-key "
                "if it requires client certificates (tls-auth-clients)"
            )
        return (
            f"cannot reach Redis at {server}: {text}; "
            "check that the server runs and --url (or EVENTSTORE_URL) points at it"
        )
    if isinstance(exc, redis.ResponseError):
        denied = permission_denied(str(exc), user=_user(server))
        if denied is not None:
            return f"{where}: {denied}"
        return f"Redis at {server} refused a command: {text}"
    return _describe_store_error(exc, text, where)


def _user(server: str) -> str:
    try:
        return urlsplit(server).username or "default"
    except ValueError:
        return "default"


def _describe_store_error(exc: BaseException, text: str, where: str) -> str:
    if isinstance(exc, AggregateNotFound):
        return f"{text} in {where}; check the type and id (eventstore stats lists the types)"
    if isinstance(exc, UnknownEventType):
        return f"{text} [{where}]: pass --app with the module that defines it"
    if isinstance(exc, StoredDataError):
        return f"corrupt stored data in {where}: {text}; run 'eventstore verify' for a full report"
    if isinstance(exc, ConfigurationError):
        return f"{where}: {text}"
    if isinstance(exc, EventStoreError | AggregateError):
        return f"{type(exc).__name__} in {where}: {text}"
    return (
        f"unexpected {type(exc).__name__} in {where}: {text} (rerun with --debug for a traceback)"
    )
