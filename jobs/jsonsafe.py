"""What a handler hands back (a result, JobError details, log metadata) made fit for a JSON column."""

from __future__ import annotations

import json
from typing import Any


def json_safe(value: Any) -> Any:
    """The value if a JSON column takes it, else its repr(). json.dumps writes NaN and Infinity,
    which neither database's JSON accepts, and PostgreSQL's jsonb refuses a NUL character: a
    write of one failed (a settle left its job running, a log line failed its job)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return repr(value) if _has_nul(value) else value


def text_safe(text: str) -> str:
    """Text a PostgreSQL text column takes: a NUL character is written as the four characters \\x00."""
    return text.replace("\x00", "\\x00")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(item) for item in value)
    return False
