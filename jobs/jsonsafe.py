"""What a handler hands back (a result, JobError details, log metadata) made fit for a JSON column."""

from __future__ import annotations

import json
from typing import Any


def json_safe(value: Any) -> Any:
    """The value if a JSON column takes it, else its repr(). json.dumps writes NaN and Infinity,
    which neither database's JSON accepts, and PostgreSQL's jsonb refuses a NUL character and a
    lone surrogate: a write of one failed (a settle left its job running, a log line failed its
    job). repr() writes both as escapes."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return repr(value) if _has_unwritable(value) else value


def result_safe(value: Any, *, limit: int) -> tuple[Any, str]:
    """A handler's result as the job keeps it (`json_safe`), and "" ; or, past `limit` bytes of
    JSON, a sentence saying so in its place, and that sentence again (for the job's log)."""
    kept = json_safe(value)
    size = len(json.dumps(kept).encode())
    if size <= limit:
        return kept, ""
    note = (f"The result was {size} bytes as JSON: at most {limit} are kept (PULSE_MAX_RESULT_BYTES). "
            "Return where the output is (a path, a URL) instead.")
    return note, note


def exception_text(exc: BaseException) -> str:
    """`Type: message` of what a handler or its estimator raised (`Type` alone without one)."""
    text = words(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def words(value: object) -> str:
    """str(value), or what to say when that raises too: a settle failing on it left the job
    running until its lease ran out, a submit answered 500."""
    try:
        return str(value)
    except Exception as failed:
        return f"(its str() raised {type(failed).__name__})"


def text_safe(text: str) -> str:
    """Text a text column takes: a NUL character (PostgreSQL refuses it) is written as the four
    characters \\x00, and a lone surrogate (no UTF-8 holds it: text decoded with
    errors="surrogateescape", a file name, a process's output) as its escape, \\udcff."""
    text = text.replace("\x00", "\\x00")
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _has_unwritable(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value or (not value.isascii() and _has_surrogate(value))
    if isinstance(value, dict):
        return any(_has_unwritable(key) or _has_unwritable(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_unwritable(item) for item in value)
    return False


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
