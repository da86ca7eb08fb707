from __future__ import annotations

import pytest

from pulse_site.demo import demo_load
from schedules.models import Schedule
from schedules.services import schedule_pause

pytestmark = pytest.mark.django_db


def test_the_demo_gives_acme_three_schedules_and_globex_one_and_restores_them_on_reload():
    demo_load()
    rows = set(Schedule.objects.values_list("team__slug", "name", "handler", "cron", "enabled"))
    assert rows == {
        ("acme-analytics", "Minute report", "demo.report", "* * * * *", True),
        ("acme-analytics", "Short sleep", "pulse.sleep", "*/2 * * * *", True),
        ("acme-analytics", "Flaky upload", "pulse.fail", "*/5 * * * *", True),
        ("globex-research", "Hourly digest", "demo.report", "@hourly", True),
    }
    schedule_pause(schedule=Schedule.objects.get(name="Minute report"))
    demo_load()
    assert set(Schedule.objects.values_list("team__slug", "name", "handler", "cron", "enabled")) == rows


def test_the_demo_submits_a_failing_job_and_two_big_jobs_once_whatever_the_reloads():
    from budgets.services import budget_policy_get
    from jobs.demo import DEMO_JOBS
    from jobs.models import Job

    demo_load()
    demo_load()

    jobs = Job.objects.filter(created_by="demo").order_by("pk")
    assert [(j.handler, j.idempotency_key) for j in jobs] == [
        ("pulse.fail", "demo-flaky-upload"), ("pulse.sleep", "demo-big-export-1"), ("pulse.sleep", "demo-big-export-2")]
    assert jobs[0].max_attempts == 3
    # The second big job can only run after tomorrow's reset: both do not fit Acme's day.
    daily = budget_policy_get(team=jobs[1].team).daily_limit
    assert jobs[1].cost_estimate == jobs[2].cost_estimate == DEMO_JOBS[1][4] == 300_000
    assert jobs[1].cost_estimate <= daily < jobs[1].cost_estimate + jobs[2].cost_estimate
