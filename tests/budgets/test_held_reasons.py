"""A held job tells the truth about why it waits and when it resumes: the jobs held behind the
first follow the limit that binds now, a job released but not yet claimed is still ahead of the
jobs behind it, and a limit raised or removed releases at once."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from budgets.models import Start
from jobs.handlers.registry import get_handler
from jobs.models import Job
from jobs.runner import claim, execute, run_job, settle
from jobs.services import job_submit, job_submit_preview

from .conftest import PAID

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


def finish(job):
    """Execute and settle a job that claim() admitted (the settle's release follows its commit)."""
    job.refresh_from_db()
    outcome = execute(job, get_handler(job.handler))
    return settle(job_pk=job.pk, attempt=job.attempts, outcome=outcome)


def hold(jobs):
    for job in jobs:
        run_job(job.public_id)
    rows = Job.objects.filter(pk__in=[j.pk for j in jobs])
    assert set(rows.values_list("status", flat=True)) == {Status.PAUSED}


def told(job):
    """What the job's page, the jobs list, the API and the admin show of its hold."""
    job.refresh_from_db()
    return job.status, [r["message"] for r in job.hold_reasons], job.resume_at


def test_jobs_held_behind_the_first_say_the_raised_cap_and_their_place_once_it_is_raised(acme, submit, set_policy,
                                                                                        acme_api):
    set_policy(acme, max_concurrent=1)
    assert claim(submit("0.10").public_id) is not None
    first, second, third = submit("0.10"), submit("0.10"), submit("0.10")
    hold([first, second, third])
    assert told(third)[1] == ["1 job is running; the limit is 1 at a time, and 2 jobs held before this one wait for a slot."]

    set_policy(acme, max_concurrent=2)

    assert told(first)[0] == Status.QUEUED
    # The first one released is not yet claimed: it is still ahead of them, and the cap is now 2.
    assert told(second) == (Status.PAUSED, [
        "1 job is running; the limit is 2 at a time, and 1 job held before this one waits for a slot."], None)
    assert told(third) == (Status.PAUSED, [
        "1 job is running; the limit is 2 at a time, and 2 jobs held before this one wait for a slot."], None)
    body = acme_api.get(f"/api/v1/jobs/{third.public_id}/").json()
    assert [r["message"] for r in body["hold_reasons"]] == told(third)[1] and body["resume_at"] is None


def test_jobs_held_behind_the_first_for_the_rate_say_the_cap_once_the_cap_binds_instead(acme, submit, set_policy):
    set_policy(acme, calls_per_minute=1)
    assert claim(submit("0.10").public_id) is not None  # running, and the minute's one start
    first, second = submit("0.10"), submit("0.10")
    hold([first, second])
    assert [r["kind"] for r in Job.objects.get(pk=second.pk).hold_reasons] == ["rate"]
    assert Job.objects.get(pk=second.pk).resume_at is not None

    set_policy(acme, calls_per_minute=None, max_concurrent=1)

    assert told(first) == (Status.PAUSED, ["1 job is running; the limit is 1 at a time; it starts when one finishes."], None)
    assert told(second) == (Status.PAUSED, [
        "1 job is running; the limit is 1 at a time, and 1 job held before this one waits for a slot."], None)


def test_a_job_released_and_not_yet_claimed_is_ahead_of_a_job_submitted_then(acme, submit, set_policy):
    """The settle's release sent the held job back to the queue; its worker has not claimed it yet
    when a new job comes: the new job is told it waits behind it, and does not take its slot."""
    set_policy(acme, max_concurrent=1)
    running = submit("0.10")
    assert claim(running.public_id) is not None
    held = submit("0.10")
    hold([held])
    finish(running)
    assert told(held)[0] == Status.QUEUED

    behind = "0 jobs are running; the limit is 1 at a time, and 1 job held before this one waits for a slot."
    preview = job_submit_preview(team=acme, handler=PAID, payload={"cost": "0.10"})
    submission = job_submit(team=acme, handler=PAID, payload={"cost": "0.10"}, source="api")
    assert [r["message"] for r in preview.would_hold] == [r["message"] for r in submission.would_hold] == [behind]
    newer = submission.job
    run_job(newer.public_id)  # its worker is quicker than the released job's
    assert told(newer) == (Status.PAUSED, [behind], None), "a newer job took the slot of a job released before it"
    run_job(held.public_id)
    assert told(held)[0] == Status.COMPLETED
    assert told(newer)[0] == Status.QUEUED  # the completed job's settle released it


def test_a_job_released_for_the_rate_and_not_yet_claimed_is_ahead_of_a_job_submitted_then(acme, submit,
                                                                                          set_policy):
    from jobs.services import job_release_due

    set_policy(acme, calls_per_minute=1)
    run_job(submit("0.10").public_id)
    held = submit("0.10")
    hold([held])
    # The minute goes by (the gate reads the database's clock: the start is moved back instead).
    Start.objects.filter(team=acme).update(at=timezone.now() - timedelta(seconds=61))
    Job.objects.filter(pk=held.pk).update(resume_at=timezone.now() - timedelta(seconds=1))
    job_release_due()
    assert told(held)[0] == Status.QUEUED

    newer = submit("0.10")
    run_job(newer.public_id)
    status, messages, resume_at = told(newer)
    assert (status, messages) == (Status.PAUSED, [
        "0 starts in the last 60 s; the limit is 1 per minute, and 1 job held before this one waits for a start."])
    # Its start can come no sooner than a minute after the released job's.
    assert resume_at is not None and resume_at >= timezone.now() + timedelta(seconds=55)
    run_job(held.public_id)
    assert told(held)[0] == Status.COMPLETED


@pytest.mark.parametrize("change", [{"max_concurrent": 5}, {"max_concurrent": None}])
def test_raising_or_removing_the_cap_through_the_api_releases_the_held_jobs_before_it_answers(acme, alice, submit,
                                                                                             set_policy, change):
    from rest_framework.test import APIClient

    set_policy(acme, max_concurrent=1)
    running = submit("0.10")
    assert claim(running.public_id) is not None
    held = [submit("0.10") for _ in range(3)]
    hold(held)
    client = APIClient()
    client.force_login(alice)
    started = time.monotonic()
    assert client.patch("/api/v1/budget/", change, format="json").status_code == 200
    took = time.monotonic() - started
    assert [told(job)[0] for job in held] == [Status.QUEUED] * 3, f"answered after {took:.3f} s"
    assert told(running)[0] == Status.RUNNING


def test_lowering_the_cap_and_the_money_holds_the_next_jobs_and_drops_none(acme, alice, submit, set_policy):
    from rest_framework.test import APIClient

    set_policy(acme, max_concurrent=3)
    running = [submit("0.10") for _ in range(2)]
    for job in running:
        assert claim(job.public_id) is not None
    set_policy(acme, max_concurrent=2)
    held = [submit("0.40") for _ in range(2)]
    hold(held)
    client = APIClient()
    client.force_login(alice)
    assert client.patch("/api/v1/budget/", {"max_concurrent": 1, "daily_limit": "0.10"},
                        format="json").status_code == 200
    assert [told(job)[0] for job in running] == [Status.RUNNING] * 2
    assert [told(job)[0] for job in held] == [Status.PAUSED] * 2
    for job in running:
        finish(job)
    # The estimate alone is now over the day's limit: it waits for a higher limit, not a window.
    status, messages, resume_at = told(held[0])
    assert status == Status.PAUSED and resume_at is None
    assert messages == ["The estimate of 0.4 alone is over the team's daily limit of 0.1; it runs once the limit "
                        "is raised or an owner makes an override."]
    assert client.patch("/api/v1/budget/", {"daily_limit": ""}, format="json").status_code == 200
    assert told(held[0])[0] == Status.QUEUED


@pytest.mark.postgres
def test_the_chains_look_for_jobs_ahead_reads_no_queued_job_of_a_team_without_a_slot_limit(acme, submit):
    """After each job it settles, a worker's chain asks whether a job of the team waits for the
    slot or start it would hand on (budget_held_for_a_slot_before). A team with neither a cap nor
    a rate keeps no one waiting for one, so its queued jobs are not read for the answer: here
    2,000 waiting for a start tomorrow, submitted before the job the chain would start."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from budgets.services import budget_held_for_a_slot_before
    from tests.plans import assert_reads_at_most

    if connection.vendor != "postgresql":
        pytest.skip("the plans are PostgreSQL's")
    tomorrow = timezone.now() + timedelta(days=1)
    template = submit(run_after=tomorrow)
    Job.objects.bulk_create([Job(team=acme, handler=template.handler, handler_version=template.handler_version,
                                 payload=template.payload, source=template.source, cost_estimate=template.cost_estimate,
                                 max_attempts=1, timeout_seconds=60, run_after=tomorrow, due_at=tomorrow)
                             for _ in range(2_000)])
    head = submit()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")

    with CaptureQueriesContext(connection) as queries:
        assert budget_held_for_a_slot_before(job=head, most=1) == 0

    (sql,) = [q["sql"] for q in queries.captured_queries]
    assert_reads_at_most(sql, "jobs_job", 0)
