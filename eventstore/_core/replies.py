"""Small readers of raw Redis replies, shared by the parsers (no I/O)."""

from __future__ import annotations

from typing import Any

from eventstore._core.errors import StoredDataError

__all__ = ["field_map", "stored_count", "text"]


def text(value: object) -> str:
    """A reply value as ``str`` (bytes are UTF-8)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def field_map(raw: Any) -> dict[bytes, bytes]:
    """Stream entry fields as a dict: Lua and RESP2 give a flat list, RESP3 a map."""
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True))


def stored_count(key: str, field: str, raw: object) -> int:
    """A stored counter or position (``None``: 0), or a ``StoredDataError`` naming ``key``."""
    if raw is None:
        return 0
    value = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    if not value.isascii() or not value.isdigit() or int(value) >= 2**63:
        raise StoredDataError(key, 0, field, f"not an integer in 0..2**63-1: {value[:40]!r}")
    return int(value)
