from __future__ import annotations

from django.test import Client

from jobs.models import Job
from jobs.services import job_submit
from tests.conftest import make_user


def staff_client() -> Client:
    client = Client()
    client.force_login(make_user("operator", is_staff=True, is_superuser=True))
    return client


def test_staff_see_jobs_attempts_and_logs_of_every_team(acme, globex):
    job_submit(team=acme, handler="pulse.noop", payload={}, source="api")
    job_submit(team=globex, handler="pulse.noop", payload={}, source="api")
    client = staff_client()
    page = client.get("/admin/jobs/job/")
    assert page.status_code == 200 and page.content.count(b"JB_") >= 2
    assert client.get("/admin/jobs/attempt/").status_code == 200
    assert client.get("/admin/jobs/tasklog/").status_code == 200


def test_the_admin_cancel_action_goes_through_the_cancel_service(acme):
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    response = staff_client().post("/admin/jobs/job/", {"action": "action_cancel", "_selected_action": [job.pk]})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.cancel_requested


def test_non_staff_cannot_reach_the_jobs_admin(alice_client):
    assert alice_client.get("/admin/jobs/job/").status_code == 302


def test_staff_delete_jobs_only_through_the_delete_service_finished_ones_only(acme):
    """A raw delete of a running job kept its reservation and running slot and wrote no event."""
    from budgets.models import BudgetPolicy
    from budgets.services import budget_policy_update
    from jobs.runner import claim, run_job
    from pulse_site.live.models import Event

    budget_policy_update(team=acme, changes={"max_concurrent": 2}, by=None)
    done = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    run_job(done.public_id)
    running = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    claim(running.public_id)
    client = staff_client()
    page = client.get("/admin/jobs/job/").content.decode()
    assert 'value="delete_selected"' not in page and 'value="action_delete_finished"' in page
    assert client.get(f"/admin/jobs/job/{running.pk}/delete/").status_code == 403

    client.post("/admin/jobs/job/", {"action": "action_delete_finished", "_selected_action": [done.pk, running.pk]})
    assert list(Job.objects.filter(team=acme).values_list("public_id", flat=True)) == [running.public_id]
    assert Event.objects.filter(kind="job.deleted", subject=done.public_id).count() == 1
    assert BudgetPolicy.objects.get(team=acme).running == 1


def test_django_q2s_own_schedules_which_never_run_here_are_not_offered(db):
    client = staff_client()
    assert client.get("/admin/django_q/schedule/").status_code == 404
    assert client.get("/admin/django_q/schedule/add/").status_code == 404
    assert client.get("/admin/django_q/success/").status_code == 200  # its task results stay
