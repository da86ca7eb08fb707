"""Plain django-q2 task functions: what a user without Pulse would enqueue with async_task."""

from __future__ import annotations

import time


def noop() -> None:
    return None


def stamp(enqueued_at: float) -> float:
    """Seconds from enqueue to this task's start (same machine, same clock)."""
    return time.time() - enqueued_at
