"""Small readers of raw Redis replies, shared by the parsers (no I/O)."""

from __future__ import annotations

from typing import Any

__all__ = ["field_map", "text"]


def text(value: object) -> str:
    """A reply value as ``str`` (bytes are UTF-8)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def field_map(raw: Any) -> dict[bytes, bytes]:
    """Stream entry fields as a dict: Lua and RESP2 give a flat list, RESP3 a map."""
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True))
