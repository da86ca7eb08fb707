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
