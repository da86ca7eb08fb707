"""The ticker: a round every PULSE_TICK_MS runs each registered step that is due (each has its own
interval, `step(name, every=…)`), each in its own transaction.

Apps register steps at import (from their AppConfig.ready); `manage.py pulse_ticker` runs the
loop. Every step must be safe to run in several tickers at once (row claims, SKIP LOCKED,
unique keys), so scaling out is starting another ticker.

A database outage does not stop the ticker: the round that hits it ends there (the other steps
would fail the same way), the broken connection is discarded, and the next round tries again.
When a step succeeds again, the `on_database_back` callbacks run (work that may have been lost
while the database was away, such as job hand-overs whose claims failed, is done again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import DatabaseError, close_old_connections, transaction

from pulse_site.outage import discard_broken_connections, is_database_outage

log = logging.getLogger("pulse.ticker")

StepFunc = Callable[[], object]


@dataclass
class Step:
    name: str
    func: StepFunc
    every: float
    atomic: bool
    last_run: float = field(default=0.0)
    # The last run failed because the database was unreachable.
    hit_outage: bool = field(default=False)

    def due(self, now: float) -> bool:
        return now - self.last_run >= self.every


_steps: dict[str, Step] = {}
_database_back: list[Callable[[], object]] = []


def on_database_back(func: Callable[[], object]) -> Callable[[], object]:
    """Register `func` to run (in its own transaction) when this ticker reaches the database
    again after an outage."""
    _database_back.append(func)
    return func


@dataclass
class Outage:
    """The ticker's view of the database: down since when, and how many outages it rode out."""

    down_since: float | None = None
    survived: int = 0
    last_seconds: float = 0.0


outage = Outage()


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
        item.hit_outage = False
        return True
    except Exception as exc:
        item.hit_outage = isinstance(exc, DatabaseError) and is_database_outage(exc)
        if not item.hit_outage:
            log.exception("ticker step %s failed", item.name)
        elif outage.down_since is None:
            log.warning("ticker step %s: database unavailable (%s); retrying every round", item.name, exc)
        # A dropped connection must not poison the next steps: discard it and reconnect lazily.
        discard_broken_connections()
        return False
    finally:
        item.last_run = time.monotonic()


def _note_database(item: Step, ok: bool) -> None:
    """Track outages across rounds; run the on-database-back callbacks when one ends."""
    if item.hit_outage:
        if outage.down_since is None:
            outage.down_since = time.monotonic()
        return
    if not ok or outage.down_since is None:
        return
    outage.last_seconds = time.monotonic() - outage.down_since
    outage.down_since = None
    outage.survived += 1
    log.warning("database back after %.1f s; ticker steps running again", outage.last_seconds)
    for func in _database_back:
        try:
            with transaction.atomic():
                func()
        except Exception:
            log.exception("after-outage callback %s failed", getattr(func, "__name__", func))
            discard_broken_connections()


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
        run_round(skip=skip, stop=stop)
        stop.wait(max(0.0, interval - (time.monotonic() - started)))


def run_round(*, skip: set[str] | None = None, stop: threading.Event | None = None) -> None:
    """One round: every due step in order, ending early at a database outage (the remaining
    steps would hit the same outage: the next round tries again)."""
    for item in registered_steps():
        if stop is not None and stop.is_set():
            break
        if (skip and item.name in skip) or not item.due(time.monotonic()):
            continue
        ok = run_step(item)
        _note_database(item, ok)
        if item.hit_outage:
            break


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
