"""The ticker: once a second, run every registered step, each in its own transaction.

Apps register steps at import (from their AppConfig.ready); `manage.py pulse_ticker` runs the
loop. Every step must be safe to run in several tickers at once (row claims, SKIP LOCKED,
unique keys), so scaling out is starting another ticker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import close_old_connections, connections, transaction

log = logging.getLogger("pulse.ticker")

StepFunc = Callable[[], object]


@dataclass
class Step:
    name: str
    func: StepFunc
    every: float
    atomic: bool
    last_run: float = field(default=0.0)

    def due(self, now: float) -> bool:
        return now - self.last_run >= self.every


_steps: dict[str, Step] = {}


def step(name: str, *, every: float = 1.0, atomic: bool = True) -> Callable[[StepFunc], StepFunc]:
    """Register `func` as a ticker step run at most every `every` seconds.

    `atomic=False` is for steps that commit in several small transactions of their own (one per
    claimed row), so that one slow row does not hold locks on the rest.
    """

    def register(func: StepFunc) -> StepFunc:
        _steps[name] = Step(name=name, func=func, every=every, atomic=atomic)
        return func

    return register


def registered_steps() -> list[Step]:
    return list(_steps.values())


def run_step(item: Step) -> bool:
    """Run one step; log and swallow its failure so the others still run. True if it succeeded."""
    try:
        if item.atomic:
            with transaction.atomic():
                item.func()
        else:
            item.func()
        return True
    except Exception:
        log.exception("ticker step %s failed", item.name)
        # A dropped connection must not poison the next steps: discard it and reconnect lazily.
        for conn in connections.all(initialized_only=True):
            if conn.in_atomic_block:
                continue
            conn.close_if_unusable_or_obsolete()
            if not conn.is_usable():
                conn.close()
        return False
    finally:
        item.last_run = time.monotonic()


def run_once(names: list[str] | None = None) -> dict[str, bool]:
    """Run the named steps (all by default) once, regardless of their period."""
    chosen = [s for s in registered_steps() if names is None or s.name in names]
    return {s.name: run_step(s) for s in chosen}


def run_forever(stop: threading.Event, *, interval: float, skip: set[str] | None = None) -> None:
    """Loop until `stop` is set; a stop request is honoured between steps, never inside one."""
    skip = skip or set()
    while not stop.is_set():
        started = time.monotonic()
        close_old_connections()
        for item in registered_steps():
            if stop.is_set():
                break
            if item.name in skip or not item.due(time.monotonic()):
                continue
            run_step(item)
        stop.wait(max(0.0, interval - (time.monotonic() - started)))


@contextmanager
def temporary_step(name: str, func: StepFunc, *, every: float = 1.0, atomic: bool = True) -> Iterator[Step]:
    """Register a step for the duration of a block (tests), restoring whatever had that name."""
    previous = _steps.get(name)
    step(name, every=every, atomic=atomic)(func)
    try:
        yield _steps[name]
    finally:
        if previous is None:
            _steps.pop(name, None)
        else:
            _steps[name] = previous
