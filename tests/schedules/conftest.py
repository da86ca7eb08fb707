from __future__ import annotations

import pytest

from jobs.handlers.registry import handler, unregister
from schedules.models import Schedule
from schedules.services import schedule_create


@pytest.fixture
def make_schedule(acme):
    def _make(team=None, **values) -> Schedule:
        values.setdefault("name", "Nightly report")
        values.setdefault("handler", "pulse.noop")
        values.setdefault("cron", "*/15 * * * *")
        values.setdefault("time_zone", "UTC")
        return schedule_create(team=team or acme, **values)

    return _make


@pytest.fixture
def temp_handler():
    """Register handlers for one test and remove them afterwards."""
    names: list[str] = []

    def register(name: str, **options):
        options.setdefault("title", name)
        options.setdefault("cost", "0")

        def wrap(func):
            names.append(name)
            return handler(name, **options)(func)

        return wrap

    yield register
    for name in names:
        unregister(name)
