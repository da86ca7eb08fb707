from __future__ import annotations

import pytest
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


def _job_in(team, status: str, **fields) -> Job:
    job = job_submit(team=team, handler="pulse.noop", payload={}, source="api").job
    Job.objects.filter(pk=job.pk).update(status=status, **fields)
    job.refresh_from_db()
    return job


def _later():
    from datetime import timedelta

    from django.utils import timezone

    return {"run_after": timezone.now() + timedelta(hours=1)}


# action: (label, the state it takes, a state it refuses with the service's reason, the event written)
JOB_ACTIONS = {
    "action_cancel": ("Cancel", ("queued", {}), ("completed", "The job is already completed"), "cancelled"),
    "action_retry": ("Retry", ("failed", {}), ("queued", "Only failed or cancelled jobs can be retried"), "retried"),
    "action_pause": ("Pause", ("queued", {}), ("running", "Only queued jobs can be held"), "paused"),
    "action_resume": ("Resume", ("paused", {}), ("queued", "Only held jobs can be resumed"), "resumed"),
    "action_start_now": ("Start now", ("queued", _later), ("queued", "Only a queued job waiting for a later start"),
                         "expedited"),
    "action_delete_finished": ("Delete finished", ("completed", {}), ("running", "Only finished jobs can be deleted"),
                               "deleted"),
}


@pytest.mark.parametrize("action", list(JOB_ACTIONS))
def test_each_job_action_acts_through_its_service_and_refuses_what_it_cannot_do_saying_why(acme, action):
    """The dashboard's job actions, in bulk: each job through the service its button calls (its
    event naming the operator); a job the service refuses is named with the service's reason and
    left as it was."""
    from pulse_site.live.models import Event

    label, (status, fields), (other, reason), kind = JOB_ACTIONS[action]
    done = _job_in(acme, status, **(fields() if callable(fields) else fields))
    refused = _job_in(acme, other)
    before = Job.objects.filter(pk=refused.pk).values().get()

    response = staff_client().post("/admin/jobs/job/", {"action": action, "_selected_action": [done.pk, refused.pk]},
                                   follow=True)

    said = [str(m) for m in response.context["messages"]]
    assert said[0] == f"{label}: 1 job."
    assert len(said) == 2 and said[1].startswith(f"{refused}: {reason}"), said
    assert Job.objects.filter(pk=refused.pk).values().get() == before
    (event,) = Event.objects.filter(kind=f"job.{kind}", subject=done.public_id)
    assert event.payload["by"] == "admin operator"
    assert not Event.objects.filter(kind=f"job.{kind}", subject=refused.public_id).exists()


def test_a_jobs_page_and_its_attempts_show_money_as_people_read_it(acme):
    """They gave the table's micro-units: 2500000 for an estimate of 2.5."""
    from jobs.models import Attempt

    job = _job_in(acme, "completed", cost_estimate=2_500_000, cost_actual=1_250_000)
    attempt = Attempt.objects.create(job=job, number=1, outcome="completed", cost=1_250_000)
    client = staff_client()

    pages = [client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode(),
             client.get(f"/admin/jobs/attempt/{attempt.pk}/change/").content.decode()]

    assert ">2.5<" in pages[0] and pages[0].count(">1.25<") == 2  # the actual cost, and the attempt's
    assert ">1.25<" in pages[1]
    assert not any(micros in page for page in pages for micros in ("2500000", "1250000"))
