"""Keeping secrets (passwords in Redis URLs) out of messages, logs and CLI output."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_text", "redact_url", "url_secrets"]

REDACTED = "***"
# query parameters redis-py reads from a URL that hold a secret
_SECRET_PARAMS = frozenset({"password", "ssl_password", "credential_provider"})
# the fallback for a URL urlsplit refuses: hide whatever sits between "user:" and "@"
_USERINFO = re.compile(r"(//[^:/@]*:)[^@]*@")


def redact_url(url: str) -> str:
    """``url`` with its password (and secret query parameters) replaced by ``***``.

    ``redis://app:S3cret@host:6379/0`` becomes ``redis://app:***@host:6379/0``.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # e.g. a port that is not a number
        return _USERINFO.sub(rf"\g<1>{REDACTED}@", url)
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name in _SECRET_PARAMS for name, _ in pairs):
            hidden = [(n, REDACTED if n in _SECRET_PARAMS else v) for n, v in pairs]
            query = urlencode(hidden, safe="*/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str) -> list[str]:
    """The secrets in ``url`` as they may appear in text: raw and percent-decoded."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        found += [v for n, v in parse_qsl(parts.query) if n in _SECRET_PARAMS and v]
    except ValueError:
        match = _USERINFO.search(url)
        if match:
            found.append(url[match.end(1) : match.end() - 1])
    return sorted({s for s in found if s}, key=len, reverse=True)


def redact_text(text: str, *secrets: str) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
