"""Schedules across daylight-saving changes as the ticker lives them: the clock walks through the
night of a change a few seconds at a time, the tick stages each run up to a minute ahead and fires
it, and every run is its slot's, once, at the instant classic cron gives."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobs.models import Job
from schedules.models import Execution, Schedule
from schedules.services import schedules_tick

pytestmark = pytest.mark.django_db

# Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z); 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z).
# America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z); 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z).
NIGHTS = {
    "Berlin spring": ("Europe/Berlin", datetime(2026, 3, 29, 1, tzinfo=UTC)),
    "Berlin autumn": ("Europe/Berlin", datetime(2026, 10, 25, 1, tzinfo=UTC)),
    "New York spring": ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),
    "New York autumn": ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),
}


@pytest.fixture(autouse=True)
def stage_a_minute_ahead(fire_at_the_slot, settings):
    settings.PULSE_SCHEDULE_STAGE_SECONDS = 60


def walk(schedule, time_machine, *, start: datetime, hours: float, step: int = 30) -> None:
    """Tick every `step` seconds from `start` for `hours`, as a ticker that never stops would."""
    moment = start
    while moment <= start + timedelta(hours=hours):
        time_machine.move_to(moment, tick=False)
        schedules_tick()
        moment += timedelta(seconds=step)


def runs(schedule, zone_name: str) -> list[str]:
    zone = ZoneInfo(zone_name)
    return [e.fire_time.astimezone(zone).strftime("%m-%d %H:%M%z")
            for e in Execution.objects.filter(schedule=schedule).order_by("fire_time")]


def assert_each_run_waited_for_its_slot(schedule) -> None:
    """Every run was staged as a job waiting for its own slot, none withdrawn or cancelled."""
    executions = list(Execution.objects.filter(schedule=schedule).select_related("job"))
    assert [(e.job.run_after, e.job.status) for e in executions] == [(e.fire_time, Job.Status.QUEUED)
                                                                      for e in executions]
    assert Job.objects.filter(origin=schedule.public_id).count() == len(executions)


@pytest.mark.parametrize(("night", "cron", "expected"), [
    # The local time does not exist that night: it runs once, at the jump, and at 02:30 again the day after.
    ("Berlin spring", "30 2 * * *", ["03-29 03:00+0200", "03-30 02:30+0200"]),
    ("New York spring", "30 2 * * *", ["03-08 03:00-0400", "03-09 02:30-0400"]),
    # The local time happens twice that night: it runs the first time only.
    ("Berlin autumn", "30 2 * * *", ["10-25 02:30+0200", "10-26 02:30+0100"]),
    ("New York autumn", "30 1 * * *", ["11-01 01:30-0400", "11-02 01:30-0500"]),
])
def test_a_daily_run_at_a_time_the_change_skips_or_repeats_runs_once_that_day(
        make_schedule, time_machine, night, cron, expected):
    zone_name, change = NIGHTS[night]
    time_machine.move_to(change - timedelta(hours=12), tick=False)
    schedule = make_schedule(cron=cron, time_zone=zone_name, overlap_policy="allow")
    for day in (change, change + timedelta(days=1)):
        walk(schedule, time_machine, start=day - timedelta(hours=1), hours=2)
    assert runs(schedule, zone_name) == expected
    assert_each_run_waited_for_its_slot(schedule)


@pytest.mark.parametrize(("night", "expected"), [
    ("Berlin spring", ["03-29 01:00+0100", "03-29 01:30+0100", "03-29 03:00+0200", "03-29 03:30+0200"]),
    ("Berlin autumn", ["10-25 02:00+0200", "10-25 02:30+0200", "10-25 02:00+0100", "10-25 02:30+0100"]),
    ("New York spring", ["03-08 01:00-0500", "03-08 01:30-0500", "03-08 03:00-0400", "03-08 03:30-0400"]),
    ("New York autumn", ["11-01 01:00-0400", "11-01 01:30-0400", "11-01 01:00-0500", "11-01 01:30-0500"]),
])
def test_every_half_hour_runs_at_each_real_half_hour_without_a_gap_or_a_repeat(
        make_schedule, time_machine, night, expected):
    zone_name, change = NIGHTS[night]
    time_machine.move_to(change - timedelta(hours=1, minutes=5), tick=False)
    schedule = make_schedule(cron="*/30 * * * *", time_zone=zone_name, overlap_policy="allow")
    # From two minutes before the first slot to two before the slot after the last, not staged yet.
    walk(schedule, time_machine, start=change - timedelta(hours=1, minutes=2), hours=2)
    assert runs(schedule, zone_name) == expected
    fired = sorted(Execution.objects.filter(schedule=schedule).values_list("fire_time", flat=True))
    assert {b - a for a, b in zip(fired, fired[1:])} == {timedelta(minutes=30)}
    assert_each_run_waited_for_its_slot(schedule)


@pytest.mark.parametrize("night", NIGHTS)
def test_an_hourly_schedule_runs_once_an_hour_of_real_time_across_the_change(make_schedule, time_machine, night):
    zone_name, change = NIGHTS[night]
    time_machine.move_to(change - timedelta(hours=2, minutes=5), tick=False)
    schedule = make_schedule(cron="0 * * * *", time_zone=zone_name, overlap_policy="allow")
    walk(schedule, time_machine, start=change - timedelta(hours=2, minutes=2), hours=4)
    fired = [e.fire_time for e in Execution.objects.filter(schedule=schedule).order_by("fire_time")]
    assert fired == [change + timedelta(hours=h) for h in range(-2, 2)]
    assert_each_run_waited_for_its_slot(schedule)


# --- What the pages and the API say about such runs --------------------------------------------


@pytest.mark.parametrize(("cron", "zone_name", "after", "expected"), [
    ("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC), [
        ("03-29 03:00+0200", "the clocks jump from 02:00 to 03:00 that day, skipping its time: it runs at the jump"),
        ("03-30 02:30+0200", "")]),
    ("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC), [
        ("10-25 02:30+0200", "02:30 comes twice that day (the clocks go back): it runs the first time only"),
        ("10-26 02:30+0100", "")]),
    ("*/30 * * * *", "America/New_York", datetime(2026, 11, 1, 5, 15, tzinfo=UTC), [
        ("11-01 01:30-0400", "01:30 comes twice that day (the clocks go back): this is the first"),
        ("11-01 01:00-0500", "01:00 comes twice that day (the clocks go back): this is the second"),
        ("11-01 01:30-0500", "01:30 comes twice that day (the clocks go back): this is the second"),
        ("11-01 02:00-0500", "")]),
])
def test_a_run_the_clock_change_moves_or_repeats_says_so(cron, zone_name, after, expected):
    from schedules.cron import cron_parse, fire_note, next_fires, zone_get

    parsed, zone = cron_parse(cron), zone_get(zone_name)
    runs = next_fires(parsed, zone, after, len(expected))
    assert [(run.astimezone(zone).strftime("%m-%d %H:%M%z"), fire_note(parsed, zone, run)) for run in runs] == expected


def test_the_schedule_page_the_previews_and_the_api_say_why_a_run_is_not_at_its_time(
        alice_client, acme_api, make_schedule, time_machine):
    time_machine.move_to(datetime(2026, 3, 28, 12, tzinfo=UTC), tick=False)
    schedule = make_schedule(cron="30 2 * * *", time_zone="Europe/Berlin")
    note = "the clocks jump from 02:00 to 03:00 that day, skipping its time: it runs at the jump"
    html = alice_client.get(f"/schedules/{schedule.public_id}/").content.decode()
    assert re.search(f'<li>Sun 2026-03-29 03:00 CEST <span class="quiet">[^\n]*?</span> <span class="note">{note}</span></li>'
                     '<li>Mon 2026-03-30 02:30 CEST <span class="quiet">', html)
    assert html.count('class="note"') == 1
    preview = alice_client.get("/schedules/preview/", {"cron": "30 2 * * *", "time_zone": "Europe/Berlin"}).json()
    assert preview["next_runs"][:2] == [f"Sun 2026-03-29 03:00 CEST: {note}", "Mon 2026-03-30 02:30 CEST"]
    api = acme_api.post("/api/v1/schedules/preview/", {"cron": "30 2 * * *", "time_zone": "Europe/Berlin"},
                        format="json").json()
    assert api["next_runs_local"][:2] == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
    assert api["next_runs_notes"] == [note, "", "", "", ""]
    one = acme_api.get(f"/api/v1/schedules/{schedule.public_id}/").json()
    assert one["next_runs"][:2] == ["2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]
    assert one["next_runs_notes"] == [note, "", "", "", ""]
    assert "next_runs_notes" not in acme_api.get("/api/v1/schedules/").json()["results"][0]


def test_the_run_strip_gives_each_runs_zone_so_the_two_passes_of_an_hour_differ(
        alice_client, make_schedule, time_machine):
    zone_name, change = NIGHTS["Berlin autumn"]
    time_machine.move_to(change - timedelta(minutes=35), tick=False)
    schedule = make_schedule(cron="*/30 * * * *", time_zone=zone_name, overlap_policy="allow")
    walk(schedule, time_machine, start=change - timedelta(minutes=32), hours=62 / 60)
    html = alice_client.get("/schedules/").content.decode()
    assert re.findall(r'title="([^"]+): queued"', html) == [
        "2026-10-25 02:30 CEST", "2026-10-25 02:00 CET", "2026-10-25 02:30 CET"]


# --- A zone changed under a staged run -----------------------------------------------------------

JUNE = datetime(2026, 6, 1, 7, 59, 30, tzinfo=UTC)  # a run of 09:00 London (08:00Z) is staged by now


@pytest.fixture
def staged_in_london(make_schedule, time_machine):
    time_machine.move_to(JUNE - timedelta(minutes=10), tick=False)
    schedule = make_schedule(cron="0 9 * * *", time_zone="Europe/London", overlap_policy="allow")
    time_machine.move_to(JUNE, tick=False)
    assert schedules_tick().staged_slots == {datetime(2026, 6, 1, 8, tzinfo=UTC)}
    return schedule


def test_a_zone_changed_before_the_staged_slot_withdraws_the_run_and_stages_the_new_zones_once(
        acme_api, staged_in_london, time_machine):
    schedule = staged_in_london
    time_machine.move_to(JUNE + timedelta(seconds=10), tick=False)
    # Lisbon keeps London's offset in summer: the same instant, staged again as the schedule now says.
    body = acme_api.patch(f"/api/v1/schedules/{schedule.public_id}/", {"time_zone": "Europe/Lisbon"},
                          format="json").json()
    assert body["next_runs"][:2] == ["2026-06-01T08:00:00+00:00", "2026-06-02T08:00:00+00:00"]
    walk(schedule, time_machine, start=JUNE + timedelta(seconds=20), hours=1 / 60)
    [run] = Execution.objects.filter(schedule=schedule).select_related("job")
    assert (run.fire_time, run.job.run_after, run.job.status) == (datetime(2026, 6, 1, 8, tzinfo=UTC),) * 2 + ("queued",)
    assert list(Job.objects.filter(origin=schedule.public_id).values_list("status", flat=True).order_by("pk")) == [
        "cancelled", "queued"]


def test_a_zone_whose_time_has_passed_today_moves_the_run_to_tomorrow_and_nothing_runs_today(
        acme_api, staged_in_london, time_machine):
    schedule = staged_in_london
    time_machine.move_to(JUNE + timedelta(seconds=10), tick=False)  # 09:59 in Berlin
    body = acme_api.patch(f"/api/v1/schedules/{schedule.public_id}/", {"time_zone": "Europe/Berlin"},
                          format="json").json()
    assert body["next_run_at"] == "2026-06-02T07:00:00+00:00"
    walk(schedule, time_machine, start=JUNE + timedelta(seconds=20), hours=1 / 60)
    assert Execution.objects.filter(schedule=schedule).count() == 0
    assert list(Job.objects.filter(origin=schedule.public_id).values_list("status", flat=True)) == ["cancelled"]


def test_the_teams_zone_is_the_default_of_new_schedules_and_moves_no_schedule(acme, alice, staged_in_london):
    from pulse_site.teams.services import team_update

    schedule = staged_in_london
    before = Schedule.objects.values("time_zone", "next_run_at", "last_run_at").get(pk=schedule.pk)
    team_update(team=acme, changes={"time_zone": "Asia/Tokyo"}, by=acme.memberships.get(user=alice))
    assert Schedule.objects.values("time_zone", "next_run_at", "last_run_at").get(pk=schedule.pk) == before
    assert Execution.objects.get(schedule=schedule).job.status == "queued"
