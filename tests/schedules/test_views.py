"""Schedule pages: list, forms with preview, detail with history, actions; viewers read; charlie gets 404."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from jobs.models import Job
from schedules.models import Execution, Schedule
from schedules.services import schedule_trigger, schedules_tick

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 10, 0, 0, tzinfo=UTC)

FORM = {"name": "Morning report", "description": "", "handler": "demo.report", "payload": '{"delay": 0}',
        "cron": "0 9 * * 1-5", "time_zone": "Europe/Berlin", "enabled": "on", "overlap_policy": "skip",
        "misfire_policy": "once", "estimate_override": ""}


def test_the_list_shows_each_schedule_with_its_description_zone_and_run_strip(alice_client, make_schedule, time_machine):
    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(name="Every minute", cron="* * * * *", overlap_policy="allow", time_zone="Europe/Berlin")
    for minute in (1, 2):
        time_machine.move_to(datetime(2026, 6, 1, 10, minute, tzinfo=UTC), tick=False)
        schedules_tick()
    Job.objects.filter(pk=Execution.objects.get(fire_time=datetime(2026, 6, 1, 10, 1, tzinfo=UTC)).job_id).update(
        status="completed")
    html = alice_client.get("/schedules/").content.decode()
    assert "Every minute" in html and "Every minute</a>" in html
    assert "Europe/Berlin" in html
    assert "2026-06-01 12:03 CEST" in html  # next run, in the schedule's zone
    assert html.count('class="run-cell run-completed"') == 1
    assert html.count('class="run-cell run-queued"') == 1
    assert f'action="/schedules/{schedule.public_id}/pause/"' in html
    assert f'action="/schedules/{schedule.public_id}/trigger/"' in html
    assert 'href="/schedules/"' in html and 'aria-current="page">Schedules' in html


def test_creating_a_schedule_in_the_form_redirects_to_it(alice_client, acme, time_machine):
    time_machine.move_to(T0, tick=False)
    response = alice_client.post("/schedules/new/", FORM)
    schedule = Schedule.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/schedules/{schedule.public_id}/"
    assert (schedule.cron, schedule.time_zone, schedule.payload, schedule.created_by) == (
        "0 9 * * 1-5", "Europe/Berlin", {"delay": 0}, "alice")
    assert schedule.next_run_at == datetime(2026, 6, 2, 7, 0, tzinfo=UTC)  # Tuesday 09:00 CEST
    html = alice_client.get(response["Location"]).content.decode()
    assert "At 09:00, Monday through Friday" in html
    assert "Tue 2026-06-02 09:00 CEST" in html


def test_a_refused_form_keeps_what_was_typed_and_names_the_fields(alice_client):
    response = alice_client.post("/schedules/new/", {**FORM, "cron": "0 0 30 2 *", "payload": '{"delay": 99}'})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'value="0 0 30 2 *"' in html
    assert "This expression never fires (not once in the next 5 years)." in html
    assert "delay: 99 is greater than the maximum of 60" in html
    assert "{&quot;delay&quot;: 99}" in html
    assert Schedule.objects.count() == 0


def test_the_preview_describes_the_expression_as_you_type(alice_client, time_machine):
    time_machine.move_to(T0, tick=False)
    body = alice_client.get("/schedules/preview/", {"cron": "*/15 * * * *", "time_zone": "America/New_York"}).json()
    assert body == {"description": "Every 15 minutes", "next_runs": [
        "Mon 2026-06-01 06:15 EDT", "Mon 2026-06-01 06:30 EDT", "Mon 2026-06-01 06:45 EDT",
        "Mon 2026-06-01 07:00 EDT", "Mon 2026-06-01 07:15 EDT"],
        "projection": "Next 30 days: about 2,880 runs (no estimate: the handler is gone or refuses the payload)",
        "over": ""}
    refused = alice_client.get("/schedules/preview/", {"cron": "@reboot", "time_zone": "UTC"})
    assert refused.status_code == 200
    assert refused.json() == {"errors": {"cron": ["@reboot is not supported: schedules fire by the clock only."]}}


def test_the_preview_says_what_the_schedule_would_cost_against_the_limits_as_you_type(alice_client, acme,
                                                                                      time_machine):
    from budgets.services import budget_policy_update

    time_machine.move_to(T0, tick=False)
    budget_policy_update(team=acme, changes={"monthly_limit": "50"}, by=None)
    typed = {"cron": "0 * * * *", "time_zone": "UTC", "handler": "demo.report", "payload": '{"delay": 0}'}
    body = alice_client.get("/schedules/preview/", typed).json()
    assert body["projection"] == "Next 30 days: about 720 runs × 0.12 = 86.4 (2.88 a day on average)"
    assert body["over"] == ("Alone, this schedule would pass the monthly limit of 50: its runs wait whenever the "
                            "budget is spent (held, or skipped while one waits, as its overlap policy says).")
    cheaper = alice_client.get("/schedules/preview/", {**typed, "estimate_override": "0.05"}).json()
    assert cheaper["projection"] == "Next 30 days: about 720 runs × 0.05 = 36 (1.2 a day on average)"
    assert cheaper["over"] == ""
    # Half-typed input is not an error here: the cost is left out until it parses (an override that
    # does not parse yet leaves the handler's estimate).
    for half in ({"payload": '{"delay": '}, {"handler": "nope"}):
        answer = alice_client.get("/schedules/preview/", {**typed, **half})
        assert answer.status_code == 200 and "no estimate" in answer.json()["projection"]
    assert "× 0.12 =" in alice_client.get("/schedules/preview/", {**typed, "estimate_override": "0.0.5"}).json()["projection"]


def test_the_projection_weighs_the_busiest_day_and_the_week_and_says_when_every_run_is_refused(alice_client, acme,
                                                                                                time_machine):
    """A Monday-only schedule spends on Monday what its average spreads over the month; a run
    whose estimate is above a limit is never held: it is refused."""
    from budgets.services import budget_policy_update

    time_machine.move_to(T0, tick=False)
    budget_policy_update(team=acme, changes={"daily_limit": "1", "weekly_limit": "1"}, by=None)
    mondays = {"cron": "*/30 9-10 * * 1", "time_zone": "UTC", "handler": "demo.report", "payload": '{"delay": 0}',
               "estimate_override": "0.3"}
    body = alice_client.get("/schedules/preview/", mondays).json()
    assert body["projection"] == "Next 30 days: 17 runs × 0.3 = 5.1 (0.17 a day on average)"  # 4 on a Monday: 1.2
    free = alice_client.get("/schedules/preview/", {**mondays, "estimate_override": "0"}).json()
    assert (free["projection"], free["over"]) == ("Next 30 days: 17 runs, each free (an estimate of 0)", "")
    assert body["over"].startswith("Alone, this schedule would pass the daily limit of 1 and the weekly limit of 1:")
    costly = alice_client.get("/schedules/preview/", {**mondays, "cron": "0 9 * * *", "estimate_override": "1.5"}).json()
    assert costly["over"] == ("Each run's estimate of 1.5 is above the daily limit of 1 and the weekly limit of 1: "
                              "every run is refused (recorded as failed, with no job) until the limit is raised.")


def test_editing_validates_and_saves(alice_client, make_schedule):
    schedule = make_schedule()
    page = alice_client.get(f"/schedules/{schedule.public_id}/edit/").content.decode()
    assert 'value="*/15 * * * *"' in page
    refused = alice_client.post(f"/schedules/{schedule.public_id}/edit/", {**FORM, "handler": "pulse.noop",
                                                                           "cron": "* * * * * *"})
    assert refused.status_code == 400
    schedule.refresh_from_db()
    assert schedule.cron == "*/15 * * * *"
    saved = alice_client.post(f"/schedules/{schedule.public_id}/edit/", {**FORM, "name": "Renamed"})
    assert saved.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.name, schedule.handler) == ("Renamed", "demo.report")


def test_run_now_pause_resume_and_delete_from_the_page(alice_client, make_schedule):
    schedule = make_schedule()
    base = f"/schedules/{schedule.public_id}/"
    assert alice_client.post(base + "trigger/").status_code == 302
    execution = Execution.objects.get()
    assert execution.trigger == "manual" and execution.job is not None
    html = alice_client.get(base).content.decode()
    assert f'href="/jobs/{execution.job.public_id}/"' in html
    # ... and the job's page links back to the schedule that made it.
    job_page = alice_client.get(f"/jobs/{execution.job.public_id}/").content.decode()
    assert f'Schedule <a href="{base}">{schedule.name}</a> <code class="quiet">{schedule.public_id}</code>' in job_page
    rows = alice_client.get(base + "executions/").content.decode()
    assert execution.public_id in rows and "queued" in rows
    assert "Paused: nothing runs" not in alice_client.get(base).content.decode()
    alice_client.post(base + "pause/")
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_run_at) == (False, None)
    # The runs it would make are shown as what resuming would bring, not as what is ahead.
    runs = alice_client.get(base + "next-runs/").content.decode()
    assert runs.startswith('<li class="quiet" id="next-runs-paused">Paused: nothing runs until it is resumed. '
                           "Resumed now, it would run:</li><li class=\"quiet\">")
    alice_client.post(base + "resume/")
    schedule.refresh_from_db()
    assert schedule.enabled is True
    assert alice_client.post(base + "delete/")["Location"] == "/schedules/"
    assert Schedule.objects.count() == 0
    # The job stays; its page names the schedule it came from without a link to a page now gone.
    job_page = alice_client.get(f"/jobs/{execution.job.public_id}/").content.decode()
    assert f'Schedule <code>{schedule.public_id}</code> <span class="quiet">(deleted)</span>' in job_page
    assert f'href="{base}"' not in job_page


def test_a_viewer_reads_but_cannot_change_anything(vic_client, make_schedule):
    schedule = make_schedule()
    assert vic_client.get("/schedules/").status_code == 200
    assert vic_client.get(f"/schedules/{schedule.public_id}/").status_code == 200
    assert vic_client.get("/schedules/new/").status_code == 403
    assert vic_client.post(f"/schedules/{schedule.public_id}/trigger/").status_code == 403
    assert vic_client.post(f"/schedules/{schedule.public_id}/edit/", FORM).status_code == 403
    assert Execution.objects.count() == 0


def test_charlie_gets_404_for_every_page_with_acmes_ids_and_nothing_changes(charlie_client, make_schedule):
    schedule = make_schedule()
    schedule_trigger(schedule=schedule)
    before = (list(Schedule.objects.values()), Execution.objects.count(), Job.objects.count())
    base = f"/schedules/{schedule.public_id}/"
    for url in (base, base + "edit/", base + "row/", base + "executions/"):
        assert charlie_client.get(url).status_code == 404, url
    assert charlie_client.post(base + "edit/", FORM).status_code == 404
    for action in ("pause", "resume", "trigger", "delete"):
        assert charlie_client.post(base + action + "/").status_code == 404
    assert schedule.name not in charlie_client.get("/schedules/").content.decode()
    assert (list(Schedule.objects.values()), Execution.objects.count(), Job.objects.count()) == before


def test_the_row_partial_redraws_one_schedule_as_the_list_renders_it(alice_client, make_schedule):
    schedule = make_schedule(name="Partial")
    schedule_trigger(schedule=schedule)
    row = alice_client.get(f"/schedules/{schedule.public_id}/row/").content.decode()
    assert row.startswith(f'<tr data-schedule-id="{schedule.public_id}">')
    assert 'class="run-cell run-queued"' in row
    listed = alice_client.get("/schedules/").content.decode()
    unmasked = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')  # masked anew on every render
    assert unmasked.sub("", row.strip()) in unmasked.sub("", listed)


def test_the_detail_page_links_to_the_schedules_jobs(acme, alice_client, make_schedule):
    schedule = make_schedule()
    page = alice_client.get(f"/schedules/{schedule.public_id}/").content.decode()
    assert f'/jobs/?schedule={schedule.public_id}' in page


def test_a_skipped_runs_reason_links_the_job_it_waited_for(alice_client, make_schedule, time_machine):
    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(cron="* * * * *", overlap_policy="skip")
    time_machine.move_to(datetime(2026, 6, 1, 10, 1, tzinfo=UTC), tick=False)
    schedules_tick()
    first = Execution.objects.get().job
    Job.objects.filter(pk=first.pk).update(status=Job.Status.RUNNING)
    time_machine.move_to(datetime(2026, 6, 1, 10, 2, tzinfo=UTC), tick=False)
    schedules_tick()
    page = alice_client.get(f"/schedules/{schedule.public_id}/").content.decode()
    assert (f'Skipped: the run of <a href="/jobs/{first.public_id}/"><code>{first.public_id}</code></a> '
            "is still running.") in page


def test_id_links_escapes_everything_but_the_links():
    from pulse_site.templatetags.pulse_tags import id_links

    job_id, schedule_id = "JB_" + "0" * 26, "SP_" + "1" * 26
    assert id_links(f"<b>{job_id}</b> then {schedule_id}.") == (
        f'&lt;b&gt;<a href="/jobs/{job_id}/"><code>{job_id}</code></a>&lt;/b&gt; then '
        f'<a href="/schedules/{schedule_id}/"><code>{schedule_id}</code></a>.')
    assert id_links("JB_short and XX_" + "0" * 26) == "JB_short and XX_" + "0" * 26


# --- what a schedule will cost ------------------------------------------------------------------


def test_a_schedules_page_projects_its_runs_and_cost_over_30_days_against_the_limits(alice_client, acme, make_schedule,
                                                                                     time_machine):
    from budgets.services import budget_policy_update
    from schedules.selectors import schedule_projection

    time_machine.move_to(T0, tick=False)
    weekdays = make_schedule(handler="demo.report", payload={"delay": 0}, cron="0 9 * * 1-5", time_zone="Europe/Berlin")
    projection = schedule_projection(weekdays)
    # From the next run (Tuesday June 2, 09:00 Berlin) for 30 days: the 22 weekdays up to July 1.
    assert (projection.runs, projection.approximate, projection.per_run) == (22, False, 120_000)
    assert projection.as_dict()["total"] == "2.64" and projection.over == []

    minutely = make_schedule(name="Every minute", cron="* * * * *", estimate_override="0.01")
    busy = schedule_projection(minutely)
    assert (busy.runs, busy.approximate) == (43_200, True)  # scaled from 300 steps
    budget_policy_update(team=acme, changes={"daily_limit": "100", "monthly_limit": "300"}, by=None)
    busy = schedule_projection(minutely)
    assert busy.over == ["the monthly limit of 300"]  # 432 a month, 14.4 a day
    body = alice_client.get(f"/schedules/{minutely.public_id}/").content.decode()
    assert "about 43,200 runs × 0.01 = 432" in body
    assert "Alone, this schedule would pass the monthly limit of 300" in body

    alice_client.post(f"/schedules/{minutely.public_id}/pause/")
    minutely.refresh_from_db()
    assert schedule_projection(minutely).runs == 0


def test_the_api_gives_one_schedules_projection_and_not_the_lists(acme_api, make_schedule):
    schedule = make_schedule(handler="demo.report", payload={"delay": 0}, cron="0 * * * *")
    one = acme_api.get(f"/api/v1/schedules/{schedule.public_id}/").json()
    assert one["projection"]["days"] == 30 and one["projection"]["per_run"] == "0.12"
    assert (one["projection"]["runs"], one["projection"]["approximate"]) == (720, True)
    assert "projection" not in acme_api.get("/api/v1/schedules/").json()["results"][0]


def test_the_list_shows_a_page_of_schedules_loads_more_and_finds_them_by_name(alice_client, acme, make_schedule,
                                                                                monkeypatch):
    import schedules.selectors

    made = [make_schedule(name=f"Report {n:02d}") for n in range(5)] + [make_schedule(name="Cleanup")]
    monkeypatch.setattr(schedules.selectors, "SCHEDULES_PAGE", 4)
    first = alice_client.get("/schedules/")
    ids = [row.schedule.public_id for row in first.context["rows"]]
    assert len(ids) == 4 and first.context["next_url"] and 'id="load-more"' in first.content.decode()
    rest = alice_client.get(f"/schedules/{first.context['next_url']}")
    ids += [row.schedule.public_id for row in rest.context["rows"]]
    assert not rest.context["next_url"] and "load-more" not in rest.content.decode()
    assert sorted(ids) == sorted(s.public_id for s in made) and len(set(ids)) == 6

    found = alice_client.get("/schedules/?name=clean").content.decode()
    assert made[-1].public_id in found and made[0].public_id not in found
    assert "No schedule whose name holds “zzz”." in alice_client.get("/schedules/?name=zzz").content.decode()
    made.append(make_schedule(name="Sleeper", handler="pulse.sleep", payload={"seconds": 1}))
    by_handler = alice_client.get("/schedules/?handler=pulse.sleep")
    assert [row.schedule.public_id for row in by_handler.context["rows"]] == [made[-1].public_id]
    assert "No schedule whose name holds “Report” of pulse.sleep." in alice_client.get(
        "/schedules/?handler=pulse.sleep&name=Report").content.decode()
    assert 'href="/schedules/?handler=pulse.sleep">Its schedules</a>' in alice_client.get(
        "/handlers/pulse.sleep/").content.decode()
    gone = alice_client.get("/schedules/?cursor=SP_01AAAAAAAAAAAAAAAAAAAAAAAA", follow=True)
    assert gone.status_code == 200 and "That link to a page of schedules is not one this list gave" in (
        gone.content.decode())


def test_run_now_that_the_budget_refuses_says_so_not_that_it_started(alice_client, acme, make_schedule):
    from budgets.services import budget_policy_update

    schedule = make_schedule(estimate_override="5")
    budget_policy_update(team=acme, changes={"daily_limit": "1"}, by=None)
    page = alice_client.post(f"/schedules/{schedule.public_id}/trigger/", follow=True)
    said = [(m.level_tag, str(m)) for m in page.context["messages"]]
    assert len(said) == 1 and said[0][0] == "error"
    assert said[0][1].startswith("“Nightly report” did not run: ") and "daily limit of 1" in said[0][1]
    assert Execution.objects.get(schedule=schedule).job is None


def test_a_runs_status_reads_as_the_jobs_list_says_it(alice_client, make_schedule):
    schedule = make_schedule()
    execution = schedule_trigger(schedule=schedule)
    Job.objects.filter(pk=execution.job.pk).update(status=Job.Status.PAUSED)
    rows = alice_client.get(f"/schedules/{schedule.public_id}/executions/").content.decode()
    assert 'data-status="paused"' in rows and 'data-field="status">Held</span>' in rows


def test_the_run_history_pages_and_filters_by_status(alice_client, acme, make_schedule, monkeypatch):
    """The page showed the newest 50 runs, no more, and no way to find the skipped ones."""
    from datetime import timedelta

    from schedules import views

    monkeypatch.setattr(views, "HISTORY", 2)
    schedule = make_schedule()
    base = datetime(2026, 6, 1, tzinfo=UTC)
    runs = [Execution.objects.create(schedule=schedule, team=acme, fire_time=base + timedelta(minutes=15 * n),
                                     outcome="skipped" if n % 2 else "", reason="busy" if n % 2 else "x")
            for n in range(5)]
    page = alice_client.get(f"/schedules/{schedule.public_id}/")
    assert [e.public_id for e in page.context["executions"]] == [runs[4].public_id, runs[3].public_id]
    more = page.context["next_url"]
    assert more and [e.public_id for e in alice_client.get(f"/schedules/{schedule.public_id}/{more}").context[
        "executions"]] == [runs[2].public_id, runs[1].public_id]
    skipped = alice_client.get(f"/schedules/{schedule.public_id}/", {"status": "skipped"}).context["executions"]
    assert [e.public_id for e in skipped] == [runs[3].public_id, runs[1].public_id]
    refused = alice_client.get(f"/schedules/{schedule.public_id}/", {"status": "bogus"})
    assert refused.status_code == 200 and refused.context["executions"] == []
    assert 'id="runs-refused"' in refused.content.decode()


def test_an_empty_run_history_says_why_it_is_empty(alice_client, acme, make_schedule):
    """A status with no runs read "No runs yet: the first comes at the next run above", the unfiltered words."""
    schedule = make_schedule()
    url = f"/schedules/{schedule.public_id}/"
    assert "No runs yet: the first comes at the next run above" in alice_client.get(url).content.decode()
    Execution.objects.create(schedule=schedule, team=acme, fire_time=datetime(2026, 6, 1, tzinfo=UTC),
                             outcome="skipped", reason="busy")
    for path in (url, f"{url}executions/"):
        text = alice_client.get(path, {"status": "error"}).content.decode()
        assert "No runs yet" not in text and 'No error runs. <a href="?">Show every run</a>' in text
    refused = alice_client.get(url, {"status": "bogus"}).content.decode()
    assert "No runs shown: the filter could not be read (see above)." in refused and "No runs yet" not in refused
