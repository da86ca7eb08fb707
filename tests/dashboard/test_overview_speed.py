"""The overview's first render reads each shared figure once and shows what its live fragments show.

Its speed with a million jobs is measured by the bench (`pulse_bench --only pages`), not here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobs.models import Job, JobStat
from pulse_site import selectors

T0 = datetime(2026, 3, 10, 12, 30, 15, tzinfo=UTC)
S = Job.Status


@pytest.fixture
def history(acme, globex, make_job, time_machine):
    time_machine.move_to(T0, tick=False)
    for minutes, status in ((5, S.COMPLETED), (7, S.FAILED), (30, S.COMPLETED), (90, S.COMPLETED)):
        make_job(status=status, created=T0 - timedelta(minutes=minutes), started_after=timedelta(seconds=2),
                 run_for=timedelta(seconds=3))
    make_job(status=S.QUEUED)
    make_job(status=S.RUNNING)
    make_job(status=S.PAUSED, hold_reasons=[{"kind": "budget"}])
    make_job(team=globex, status=S.FAILED, created=T0 - timedelta(minutes=3), started_after=timedelta(0),
             run_for=timedelta(seconds=1))
    hour = T0.replace(minute=0, second=0)
    for back, completed, failed in ((0, 4, 1), (5, 2, 0), (23, 1, 3), (24, 9, 9), (100, 6, 2)):
        JobStat.objects.create(team=acme, handler="pulse.noop", hour=hour - timedelta(hours=back),
                               completed=completed, failed=failed)
    JobStat.objects.create(team=globex, handler="pulse.noop", hour=hour, completed=70, failed=70)


def test_the_first_render_shows_what_the_live_fragments_show(acme, history):
    pulse, charts = selectors.overview_page(team=acme, now=T0)
    alone_pulse = selectors.overview_pulse(team=acme, now=T0)
    alone_charts = selectors.overview_charts(team=acme, now=T0)

    assert pulse.counters == alone_pulse.counters
    assert (pulse.counters.completed_hour, pulse.counters.failed_hour) == (2, 1)
    assert (pulse.counters.completed_day, pulse.counters.failed_day) == (7, 4)
    assert (pulse.counters.queued, pulse.counters.running, pulse.counters.held) == (1, 1, 1)
    assert (pulse.workers["jobs_queued"], pulse.workers["jobs_running"]) == (1, 1)
    # (the rest of the workers panel is this host's memory and the clusters' uptime, which move)
    keys = ("jobs_queued", "jobs_running", "workers_active", "workers_total")
    assert {k: pulse.workers[k] for k in keys} == {k: alone_pulse.workers[k] for k in keys}
    assert charts.last_hour == alone_charts.last_hour
    assert charts.last_week == alone_charts.last_week


def test_the_overview_reads_the_last_hour_and_the_week_once(alice_client, history):
    with CaptureQueriesContext(connection) as queries:
        response = alice_client.get(reverse("overview"))

    assert response.status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    per_minute = [s for s in sql if "jobs_job" in s and "TRUNC" in s.upper()]  # date_trunc, django_datetime_trunc
    per_hour = [s for s in sql if "jobs_jobstat" in s and 'GROUP BY' in s and '"hour"' in s.split("FROM")[0]]
    assert len(per_minute) == 1, per_minute
    assert len(per_hour) == 1, per_hour
