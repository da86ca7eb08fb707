from __future__ import annotations

import pytest

from schedules.models import Schedule
from schedules.services import schedule_create


@pytest.fixture(autouse=True)
def fire_at_the_slot(settings):
    """These tests are about firing at the slot; staging ahead (tests/schedules/test_staging.py)
    turns it back on."""
    settings.PULSE_SCHEDULE_STAGE_SECONDS = 0


@pytest.fixture
def make_schedule(acme):
    def _make(team=None, **values) -> Schedule:
        values.setdefault("name", "Nightly report")
        values.setdefault("handler", "pulse.noop")
        values.setdefault("cron", "*/15 * * * *")
        values.setdefault("time_zone", "UTC")
        return schedule_create(team=team or acme, **values)

    return _make

