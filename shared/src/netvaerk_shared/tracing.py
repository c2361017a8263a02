"""W3C trace context (traceparent) carried from an HTTP request into the events it causes and on into consumers."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current_traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)
current_event_id: ContextVar[str | None] = ContextVar("event_id", default=None)


def parse(value: str | None) -> tuple[str, str, str] | None:
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip().lower())
    if not m or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None
    return m.group(1), m.group(2), m.group(3)


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_of(value: str | None) -> str:
    """A new span in the same trace as `value`, or a new trace when `value` is missing or invalid."""
    parsed = parse(value)
    if parsed is None:
        return new_traceparent()
    trace_id, _, flags = parsed
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def trace_id_of(value: str | None) -> str | None:
    parsed = parse(value)
    return parsed[0] if parsed else None
