"""The claim's usual case on PostgreSQL (jobs.runner._claim_usual_case): a job that starts at once
with nothing to decide is claimed in three statements (after its submit's lock), and writes exactly what the ORM claim
writes; anything else (a limit in the way, a pause, a new window) goes the usual way, and the
usual case then leaves nothing written."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from budgets.models import BudgetPolicy, Ledger, Start, Usage
from jobs import runner
from jobs.models import Attempt, Job, TaskLog
from jobs.pausing import queue_pause
from pulse_site.live.models import Event

from .conftest import PAID

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'"),
]
Status = Job.Status


def claim_through_the_orm(job: Job) -> None:
    with transaction.atomic():
        assert runner._claim(job.public_id) is not None


def claim_usual_case(job: Job):
    with transaction.atomic():
        return runner._claim_usual_case(job.public_id)


def ledger(job: Job) -> list[tuple]:
    return sorted(Ledger.objects.filter(job_id=job.public_id).values_list(
        "kind", "scope", "window_kind", "window_start", "window_end", "amount", "attempt", "handler", "team_id"))


MOMENTS = ("id", "public_id", "pulse_state", "created_at", "updated_at", "started_at", "dispatched_at",
           "lease_expires_at")


def written(job: Job) -> dict:
    job.refresh_from_db()
    [attempt] = Attempt.objects.filter(job=job)
    [log] = TaskLog.objects.filter(job=job)
    events = list(Event.objects.filter(subject=job.public_id).order_by("id"))
    return {
        "job": {k: v for k, v in model_to_dict(job).items() if k not in MOMENTS}
        | {"lease": job.lease_expires_at is not None, "started": job.started_at is not None},
        "pulse_state": sorted(job.pulse_state),
        "attempt": (attempt.number, attempt.worker, attempt.outcome, attempt.lease_expires_at == job.lease_expires_at,
                    attempt.started_at == job.started_at),
        "log": (log.attempt, log.level, log.message, log.stage, log.task, log.metadata),
        "events": [(e.kind, e.team_id, sorted(e.payload)) for e in events],
        "started_event": {k: v for k, v in events[-1].payload.items() if k not in MOMENTS},
        "ledger": [row[1:] for row in ledger(job)],
    }


def test_the_usual_case_writes_what_the_orm_claim_writes(acme, submit, set_policy):
    set_policy(acme, daily_limit="100.00", weekly_limit="500.00", calls_per_minute=50, max_concurrent=5)
    first, second = submit("1.25"), submit("1.25")
    claim_through_the_orm(first)  # the first of the windows: makes their usage rows
    started = claim_usual_case(second)
    assert started is not None
    job, spec = started
    assert spec.name == PAID
    # What the worker goes on with is the row as stored.
    assert model_to_dict(job) == model_to_dict(Job.objects.get(pk=second.pk))

    assert written(second) == written(first)
    # The second start counts the first: a running slot, a start, its reservation (each state
    # counts the job's own reservation as spent).
    state_first, state_second = first.pulse_state, second.pulse_state
    assert (state_first["running"], state_second["running"]) == (1, 2)
    assert (state_first["calls_this_minute"], state_second["calls_this_minute"]) == (1, 2)
    assert (state_first["spent"]["day"], state_second["spent"]["day"]) == ("1.25", "2.5")
    assert (state_first["remaining"]["week"], state_second["remaining"]["week"]) == ("498.75", "497.5")
    assert BudgetPolicy.objects.get(team=acme).running == 2
    assert Start.objects.filter(team=acme).count() == 2
    assert sorted(Usage.objects.filter(team=acme).values_list("scope", "kind", "reserved")) == [
        ("", "day", 2_500_000), ("", "month", 2_500_000), ("", "week", 2_500_000),
        (PAID, "day", 2_500_000), (PAID, "month", 2_500_000), (PAID, "week", 2_500_000)]


def test_the_usual_case_is_three_statements_after_the_submits_lock(acme, submit):
    claim_through_the_orm(submit("0.10"))
    job = submit("0.10")
    with CaptureQueriesContext(connection) as queries:
        assert runner.claim(job.public_id) is not None
    # The job's submit lock (a job may be sent before its submit commits); the job, its policy
    # (both locked) and its team; the budget state (clock, starts, the handler's cap, usage);
    # every write of the start. Then the commit.
    statements = [q["sql"] for q in queries.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
    assert len(statements) == 4, statements
    assert statements[0].startswith("SELECT pg_advisory_xact_lock(")
    assert statements[3].startswith("WITH ")


def test_a_limit_in_the_way_goes_the_usual_way_with_nothing_written_before(acme, submit, set_policy):
    set_policy(acme, daily_limit="1.00")
    runner.run_job(submit("1.00").public_id)
    over = submit("0.50")
    before = (Start.objects.count(), Ledger.objects.count(), list(Usage.objects.values_list("reserved", flat=True)))
    assert claim_usual_case(over) is None
    over.refresh_from_db()
    assert over.status == Status.QUEUED
    assert (Start.objects.count(), Ledger.objects.count(),
            list(Usage.objects.values_list("reserved", flat=True))) == before
    assert runner.claim(over.public_id) is None
    over.refresh_from_db()
    assert over.status == Status.PAUSED and over.hold_reasons[0]["kind"] == "budget"


def test_a_pause_anywhere_sends_the_claim_the_usual_way_which_applies_it_only_where_it_holds(
        acme, globex, submit):
    claim_through_the_orm(submit("0.10"))
    queue_pause(scope="team", team=globex, reason="maintenance", by="charlie")
    job = submit("0.10")
    assert claim_usual_case(job) is None
    assert runner.claim(job.public_id) is not None
    job.refresh_from_db()
    assert job.status == Status.RUNNING


def test_the_first_start_of_a_window_goes_the_usual_way_which_makes_its_usage_rows(acme, submit):
    job = submit("0.10")
    assert not Usage.objects.filter(team=acme).exists()
    assert claim_usual_case(job) is None
    assert runner.claim(job.public_id) is not None
    assert Usage.objects.filter(team=acme).count() == 6
