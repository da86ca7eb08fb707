"""The overview: live counters, charts, recent failures, the next hour's runs, all scoped to one team."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs import selectors as job_selectors
from jobs.models import Job, JobStat
from pulse_site import selectors
from schedules.services import schedule_create

T0 = datetime(2026, 3, 10, 12, 30, 15, tzinfo=UTC)
S = Job.Status


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(T0, tick=False)


def test_the_counters_count_unfinished_jobs_and_tally_the_main_hold_reasons(acme, globex, make_job, frozen):
    for _ in range(3):
        make_job(status=S.QUEUED)
    make_job(status=S.RUNNING)
    make_job(status=S.PAUSED, hold_reasons=[{"kind": "budget", "message": "Daily limit reached"}])
    make_job(status=S.PAUSED, hold_reasons=[{"kind": "budget", "message": "Daily limit reached"}])
    make_job(status=S.PAUSED, hold_reasons=[{"kind": "rate", "message": "60 calls a minute"}])
    make_job(status=S.PAUSED, hold_reasons=[])
    make_job(team=globex, status=S.QUEUED)

    counters = selectors.overview_counters(team=acme)

    assert (counters.queued, counters.running, counters.held) == (3, 1, 4)
    assert counters.held_reasons == [("budget", 2), ("manual", 1), ("rate", 1)]


def test_finished_counts_come_from_the_last_hours_jobs_and_the_days_rollups(acme, globex, make_job, frozen):
    make_job(status=S.COMPLETED, created=T0 - timedelta(minutes=30), started_after=timedelta(0),
             run_for=timedelta(seconds=5))
    make_job(status=S.FAILED, created=T0 - timedelta(minutes=10), started_after=timedelta(0),
             run_for=timedelta(seconds=1))
    # Finished 61 minutes ago: outside the last hour.
    make_job(status=S.COMPLETED, created=T0 - timedelta(minutes=62), started_after=timedelta(0),
             run_for=timedelta(minutes=1))
    make_job(team=globex, status=S.FAILED, created=T0 - timedelta(minutes=5), started_after=timedelta(0),
             run_for=timedelta(seconds=1))
    hour = T0.replace(minute=0, second=0)
    JobStat.objects.create(team=acme, handler="pulse.noop", hour=hour, completed=4, failed=1)
    JobStat.objects.create(team=acme, handler="pulse.fail", hour=hour - timedelta(hours=23), completed=2, failed=3)
    JobStat.objects.create(team=acme, handler="pulse.fail", hour=hour - timedelta(hours=24), completed=50, failed=50)
    JobStat.objects.create(team=globex, handler="pulse.fail", hour=hour, completed=7, failed=7)

    counters = selectors.overview_counters(team=acme)

    assert (counters.completed_hour, counters.failed_hour) == (1, 1)
    assert (counters.completed_day, counters.failed_day) == (6, 4)


def test_the_per_minute_chart_has_sixty_bars_and_puts_each_job_in_its_minute(acme, make_job, frozen):
    make_job(status=S.COMPLETED, completed_at=T0 - timedelta(seconds=20))  # 12:29:55, this minute's bar
    make_job(status=S.COMPLETED, completed_at=T0 - timedelta(seconds=5))  # 12:30:10
    make_job(status=S.FAILED, completed_at=T0 - timedelta(minutes=59, seconds=10))  # 11:31:05, the first bar

    chart = selectors.chart_last_hour(team=acme, now=T0)

    assert (chart.first_label, chart.last_label, chart.total, chart.maximum) == ("11:31", "12:30", "3", "1")
    assert sorted(r.title for r in chart.rects) == [
        "11:31: 1 failed", "12:29: 1 completed", "12:30: 1 completed"]
    assert {r.series for r in chart.rects if r.title.startswith("11:31")} == {1}


def test_the_weekly_chart_reads_the_hourly_rollups_of_seven_days(acme, frozen):
    hour = T0.replace(minute=0, second=0)
    JobStat.objects.create(team=acme, handler="a", hour=hour, completed=2, failed=1)
    JobStat.objects.create(team=acme, handler="b", hour=hour, completed=3)
    JobStat.objects.create(team=acme, handler="a", hour=hour - timedelta(hours=167), failed=4)
    JobStat.objects.create(team=acme, handler="a", hour=hour - timedelta(hours=168), completed=99)

    chart = selectors.chart_last_week(team=acme, now=T0)

    assert (chart.total, chart.maximum) == ("10", "6")
    assert len({r.x for r in chart.rects}) == 2


def test_the_charts_are_labelled_in_the_teams_zone_as_the_rest_of_the_page(acme, make_job, frozen):
    acme.time_zone = "Asia/Kathmandu"  # 5:45 ahead of UTC
    acme.save(update_fields=["time_zone"])
    make_job(status=S.COMPLETED, completed_at=T0 - timedelta(seconds=5))
    minute = selectors.chart_last_hour(team=acme, now=T0)
    assert (minute.first_label, minute.last_label) == ("17:16", "18:15")
    week = selectors.chart_last_week(team=acme, now=T0)
    assert week.last_label == "Tue 10 17:45"  # the UTC hour 12:00 that holds T0


def test_wait_and_run_times_are_the_median_and_p95_per_handler(acme, make_job, frozen):
    for seconds in range(1, 21):  # waits 1..20 s, runs 2..40 s
        make_job(handler="pulse.noop", status=S.COMPLETED, created=T0 - timedelta(hours=1),
                 started_after=timedelta(seconds=seconds), run_for=timedelta(seconds=2 * seconds))
    make_job(handler="pulse.old", status=S.COMPLETED, created=T0 - timedelta(hours=30),
             started_after=timedelta(seconds=1), run_for=timedelta(seconds=1))

    timings = job_selectors.handler_timings(team=acme, now=T0)

    assert timings == [job_selectors.Timing(handler="pulse.noop", jobs=20, wait_median_ms=10_000, wait_p95_ms=19_000,
                                        run_median_ms=20_000, run_p95_ms=38_000)]


def test_upcoming_runs_are_the_fires_of_the_next_hour_soonest_first(acme, globex, frozen):
    schedule_create(team=acme, name="every 15", handler="pulse.noop", cron="*/15 * * * *")
    schedule_create(team=acme, name="daily", handler="pulse.noop", cron="0 3 * * *")
    schedule_create(team=acme, name="paused", handler="pulse.noop", cron="* * * * *", enabled=False)
    schedule_create(team=globex, name="theirs", handler="pulse.noop", cron="* * * * *")

    runs = selectors.upcoming_runs(team=acme, now=T0)

    assert [(r.schedule.name, r.at.strftime("%H:%M")) for r in runs] == [
        ("every 15", "12:45"), ("every 15", "13:00"), ("every 15", "13:15"), ("every 15", "13:30")]


def test_the_overview_shows_failures_with_code_and_message_linking_to_the_job(alice_client, acme, make_job, frozen):
    job = make_job(handler="pulse.fail", status=S.FAILED, completed_at=T0, error_code="network_error",
                   error_message="Connection reset by peer")

    html = alice_client.get(reverse("overview")).content.decode()

    assert f'href="/jobs/{job.public_id}/"' in html
    assert "network_error" in html and "Connection reset by peer" in html
    assert 'id="overview-charts"' in html and 'id="overview-pulse"' in html


def test_the_days_failures_are_counted_by_error_code_with_links_to_them(alice_client, acme, globex, make_job,
                                                                       frozen):
    for code, at in (("network_error", T0), ("network_error", T0 - timedelta(hours=3)), ("timeout", T0),
                     ("timeout", T0 - timedelta(hours=25))):  # the last one is older than a day
        make_job(handler="pulse.fail", status=S.FAILED, completed_at=at, error_code=code)
    make_job(team=globex, handler="pulse.fail", status=S.FAILED, completed_at=T0, error_code="parse_error")

    assert job_selectors.failure_codes(team=acme, now=T0) == (("network_error", 2), ("timeout", 1))
    html = alice_client.get(reverse("overview_pulse")).content.decode()
    assert '<a href="/jobs/?status=failed&amp;error_code=network_error">network_error</a> 2' in html
    assert "parse_error" not in html


def test_the_fragments_render_the_same_blocks_for_the_live_refresh(alice_client, acme, make_job, frozen):
    make_job(status=S.QUEUED)

    pulse = alice_client.get(reverse("overview_pulse"))
    charts = alice_client.get(reverse("overview_charts"))

    assert pulse.status_code == charts.status_code == 200
    assert pulse.content.decode().startswith('<div id="overview-pulse"')
    assert '<span class="counter-value" id="count-queued">1</span>' in pulse.content.decode()
    assert charts.content.decode().startswith('<div id="overview-charts"')


def test_charlie_sees_none_of_acmes_jobs_on_his_overview_or_its_fragments(charlie_client, acme, make_job, frozen):
    job = make_job(handler="pulse.fail", status=S.FAILED, completed_at=T0, error_message="acme secret")
    make_job(status=S.QUEUED)

    pages = [charlie_client.get(reverse(name)).content.decode()
             for name in ("overview", "overview_pulse", "overview_charts", "overview_activity")]

    assert all(job.public_id not in html and "acme secret" not in html for html in pages)
    assert '<span class="counter-value" id="count-queued">0</span>' in pages[1]


def test_the_overview_needs_a_login(client, db):
    for name in ("overview", "overview_pulse", "overview_charts", "overview_activity"):
        assert client.get(reverse(name)).status_code == 302


def test_the_overview_groups_the_digits_of_a_big_teams_counts(alice_client, acme):
    """A busy team's day reads 33,599,664, as the jobs list's "more than 10,000" does, not 33599664."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    JobStat.objects.create(team=acme, handler="pulse.noop", hour=hour, completed=33_599_664, failed=4_147_920)

    html = alice_client.get("/").content.decode()

    assert '<span class="counter-note">33,599,664 in 24 h</span>' in html
    assert '<span class="counter-note">4,147,920 in 24 h</span>' in html
