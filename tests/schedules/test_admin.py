"""The schedules admin: staff see every team's schedules and executions; changes go through the services."""

from __future__ import annotations

from django.test import Client

from jobs.models import Job
from schedules.models import Execution, Schedule
from schedules.services import schedule_trigger
from tests.conftest import make_user

FORM = {"name": "Admin made", "description": "", "handler": "pulse.noop", "payload": "{}", "cron": "@daily", "estimate": "",
        "time_zone": "UTC", "enabled": "on", "overlap_policy": "skip", "misfire_policy": "once",
}


def staff_client() -> Client:
    client = Client()
    client.force_login(make_user("operator", is_staff=True, is_superuser=True))
    return client


def test_staff_see_schedules_and_executions_of_every_team(acme, globex, make_schedule):
    schedule_trigger(schedule=make_schedule(team=acme, name="Acme one"))
    make_schedule(team=globex, name="Globex one")
    client = staff_client()
    page = client.get("/admin/schedules/schedule/").content.decode()
    assert "Acme one" in page and "Globex one" in page
    assert client.get("/admin/schedules/execution/").content.count(b"EX_") >= 1


def test_the_admin_add_form_validates_through_the_services(acme):
    client = staff_client()
    refused = client.post("/admin/schedules/schedule/add/", {**FORM, "team": acme.pk, "cron": "0 0 30 2 *"})
    assert refused.status_code == 200
    assert "This expression never fires (not once in the next 5 years)." in refused.content.decode()
    assert Schedule.objects.count() == 0
    created = client.post("/admin/schedules/schedule/add/", {**FORM, "team": acme.pk, "estimate": "0.2"})
    assert created.status_code == 302, created.context["adminform"].form.errors
    schedule = Schedule.objects.get()
    assert (schedule.created_by, schedule.estimate_override, schedule.next_run_at is not None) == (
        "admin operator", 200_000, True)


def test_admin_actions_disable_enable_and_run_now_through_the_services(make_schedule):
    schedule = make_schedule()
    client = staff_client()
    client.post("/admin/schedules/schedule/", {"action": "action_disable", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_run_at) == (False, None)
    client.post("/admin/schedules/schedule/", {"action": "action_enable", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert schedule.enabled is True and schedule.next_run_at is not None
    client.post("/admin/schedules/schedule/", {"action": "action_run_now", "_selected_action": [schedule.pk]})
    execution = Execution.objects.get()
    assert (execution.trigger, execution.job.source, execution.job.created_by) == ("manual", "schedule", "admin operator")
    assert Job.objects.count() == 1


def test_non_staff_cannot_reach_the_schedules_admin(alice_client):
    assert alice_client.get("/admin/schedules/schedule/").status_code == 302


def test_the_admin_change_form_refuses_a_bad_edit_and_changes_nothing(make_schedule):
    schedule = make_schedule()
    client = staff_client()
    url = f"/admin/schedules/schedule/{schedule.pk}/change/"
    refused = client.post(url, {**FORM, "handler": "pulse.sleep", "payload": '{"steps": 0}'})
    assert refused.status_code == 200
    assert "0 is less than the minimum of 1" in refused.content.decode()
    schedule.refresh_from_db()
    assert schedule.handler == "pulse.noop"
    assert client.post(url, {**FORM, "name": "Renamed"}).status_code == 302
    schedule.refresh_from_db()
    assert (schedule.name, schedule.cron) == ("Renamed", "@daily")


def test_staff_delete_a_schedule_through_the_delete_service(acme, make_schedule):
    from pulse_site.live.models import Event

    schedule = make_schedule(team=acme, name="Doomed")
    client = staff_client()
    page = client.get("/admin/schedules/schedule/").content.decode()
    assert 'value="delete_selected"' not in page and 'value="action_delete"' in page
    assert client.get(f"/admin/schedules/schedule/{schedule.pk}/delete/").status_code == 403
    client.post("/admin/schedules/schedule/", {"action": "action_delete", "_selected_action": [schedule.pk]})
    assert not Schedule.objects.filter(pk=schedule.pk).exists()
    assert Event.objects.filter(kind="schedule.deleted", subject=schedule.public_id).count() == 1
