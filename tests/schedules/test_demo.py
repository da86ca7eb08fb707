from __future__ import annotations

import pytest

from pulse_site.demo import demo_load
from schedules.models import Schedule
from schedules.services import schedule_pause

pytestmark = pytest.mark.django_db


def test_the_demo_gives_acme_two_schedules_and_globex_one_and_restores_them_on_reload():
    demo_load()
    rows = set(Schedule.objects.values_list("team__slug", "name", "handler", "cron", "enabled"))
    assert rows == {
        ("acme-analytics", "Minute report", "demo.report", "* * * * *", True),
        ("acme-analytics", "Short sleep", "pulse.sleep", "*/2 * * * *", True),
        ("globex-research", "Hourly digest", "demo.report", "@hourly", True),
    }
    schedule_pause(schedule=Schedule.objects.get(name="Minute report"))
    demo_load()
    assert set(Schedule.objects.values_list("team__slug", "name", "handler", "cron", "enabled")) == rows
