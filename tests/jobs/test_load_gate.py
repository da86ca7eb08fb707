"""The system load gate: a worker above its memory or CPU threshold starts nothing; the job
stays queued with the reason and is handed over again later. Off by default."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.models import Attempt, Job
from jobs.runner import run_job
from tests.conftest import token_client

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


def test_the_gate_is_off_by_default(settings, submit):
    assert (settings.PULSE_ADMIT_MAX_MEMORY_PERCENT, settings.PULSE_ADMIT_MAX_LOAD_PER_CPU) == (0, 0)
    job = submit("pulse.noop")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED


def test_a_worker_over_its_memory_threshold_leaves_the_job_queued_with_the_reason(acme, settings, submit):
    settings.PULSE_ADMIT_MAX_MEMORY_PERCENT = 0.001  # every machine uses more
    settings.PULSE_ADMIT_LOAD_RETRY_SECONDS = 7
    job = submit("pulse.noop")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.dispatched_at) == (Status.QUEUED, 0, None)
    assert not Attempt.objects.filter(job=job).exists()
    reason = job.hold_reasons[0]
    assert (reason["kind"], reason["resource"], reason["limit"]) == ("system_load", "memory", 0.001)
    assert reason["message"].endswith("the job waits for another worker or a later try.")
    assert job.run_after - job.updated_at == timedelta(seconds=7)
    # Visible to the team through the API.
    body = token_client(acme, "read").get(f"/api/v1/jobs/{job.public_id}/").json()
    assert body["hold_reasons"][0]["kind"] == "system_load"

    settings.PULSE_ADMIT_MAX_MEMORY_PERCENT = 0
    job.run_after = None
    job.save(update_fields=["run_after"])
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.hold_reasons == []


def test_a_worker_over_its_cpu_load_threshold_starts_nothing(settings, submit, monkeypatch):
    # The machine's load is the outside world: pinned here to a known value.
    monkeypatch.setattr("os.getloadavg", lambda: (8.0, 8.0, 8.0))
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    settings.PULSE_ADMIT_MAX_LOAD_PER_CPU = 1.5
    job = submit("pulse.noop")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert job.hold_reasons[0]["message"] == ("The worker's machine has a load of 2.00 per CPU (limit 1.5); "
                                              "the job waits for another worker or a later try.")
