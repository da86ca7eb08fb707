"""The gate, settle, release, overrides and repair, run in-process through the worker's path."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from budgets.models import Alert, BudgetPolicy, Ledger, Start, Usage
from budgets.services import budget_override_create, budget_repair, budget_settle
from jobs.models import Job
from jobs.runner import claim, execute, rescue_expired, run_job, settle
from jobs.services import job_pause
from pulse_site.errors import PermissionDenied, Unprocessable
from pulse_site.live.models import Event
from pulse_site.teams.models import Membership

from .conftest import OTHER

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


def usage(team, kind="day", scope=""):
    return Usage.objects.get(team=team, scope=scope, kind=kind)


def status(job):
    job.refresh_from_db()
    return job.status


def finish(job):
    """Execute and settle a job that claim() admitted."""
    job.refresh_from_db()
    from jobs.handlers.registry import get_handler

    outcome = execute(job, get_handler(job.handler))
    return settle(job_pk=job.pk, attempt=job.attempts, outcome=outcome)


def test_exactly_at_the_limit_passes_and_one_micro_unit_over_is_held(acme, submit, set_policy):
    set_policy(acme, daily_limit="1.00")
    first = submit("1.00")
    run_job(first.public_id)
    assert status(first) == Status.COMPLETED
    over = submit("0.000001")
    run_job(over.public_id)
    over.refresh_from_db()
    assert over.status == Status.PAUSED
    [reason] = over.hold_reasons
    assert reason["kind"] == "budget" and reason["window"] == "day" and reason["scope"] == ""
    assert (reason["limit"], reason["committed"], reason["reserved"], reason["estimate"]) == ("1", "1", "0", "0.000001")
    assert over.resume_at == usage(acme).window_end


def test_ten_and_twenty_cents_against_thirty_is_exactly_at_the_limit(acme, submit, set_policy):
    set_policy(acme, daily_limit="0.30")
    for cost in ("0.10", "0.20"):
        job = submit(cost)
        run_job(job.public_id)
        assert status(job) == Status.COMPLETED
    assert (usage(acme).committed, usage(acme).reserved) == (300_000, 0)
    assert usage(acme, "month").committed == 300_000


def test_an_overrun_is_charged_in_full_and_later_admissions_are_held(acme, submit, set_policy):
    set_policy(acme, daily_limit="1.00")
    job = submit("0.50", actual="0.90")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.cost_actual == 900_000
    assert usage(acme).committed == 900_000 and usage(acme, scope="test.paid").committed == 900_000
    overrun = Event.objects.get(kind="budget.overrun")
    assert overrun.payload["estimate"] == "0.5" and overrun.payload["actual"] == "0.9"
    assert overrun.payload["over_by"] == "0.4"
    later = submit("0.50")
    run_job(later.public_id)
    assert status(later) == Status.PAUSED


def test_a_handler_that_reports_no_cost_is_charged_its_estimate(acme, submit, set_policy):
    set_policy(acme, daily_limit="5.00")
    job = submit("0.40")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.cost_actual == 400_000
    assert (usage(acme).committed, usage(acme).reserved) == (400_000, 0)
    assert list(Ledger.objects.filter(job_id=job.public_id, scope="", window_kind="day")
                .order_by("id").values_list("kind", "amount")) == [("reserve", 400_000), ("release", 400_000),
                                                                    ("charge", 400_000)]


def test_the_pulse_state_is_stored_on_the_admitted_job(acme, submit, set_policy):
    set_policy(acme, daily_limit="2.00", calls_per_minute=10, max_concurrent=3)
    job = submit("0.50")
    assert claim(job.public_id) is not None
    job.refresh_from_db()
    state = job.pulse_state
    assert state["spent"] == {"day": "0.5", "week": "0.5", "month": "0.5"}
    assert state["remaining"] == {"day": "1.5", "week": None, "month": None}
    assert (state["calls_this_minute"], state["calls_remaining"], state["running"]) == (1, 9, 1)


def test_a_held_job_reserves_nothing_and_burns_no_rate_slot(acme, submit, set_policy):
    set_policy(acme, daily_limit="1.00", calls_per_minute=5)
    running = submit("1.00")
    claim(running.public_id)
    held = submit("0.50")
    run_job(held.public_id)
    assert status(held) == Status.PAUSED
    assert (usage(acme).reserved, Start.objects.filter(team=acme).count()) == (1_000_000, 1)
    assert not Ledger.objects.filter(job_id=held.public_id).exists()
    assert BudgetPolicy.objects.get(team=acme).running == 1


def test_a_handler_cap_holds_that_handler_only(acme, submit, set_policy):
    set_policy(acme, handler_caps={"test.paid": {"daily": "1.00"}})
    run_job(submit("1.00").public_id)
    capped = submit("0.10")
    run_job(capped.public_id)
    capped.refresh_from_db()
    assert capped.status == Status.PAUSED and capped.hold_reasons[0]["scope"] == "test.paid"
    other = submit("0.10", handler_name=OTHER)
    run_job(other.public_id)
    assert status(other) == Status.COMPLETED


def test_a_settle_that_frees_headroom_admits_the_next_held_job_at_once(acme, submit, set_policy):
    set_policy(acme, daily_limit="1.00")
    first = submit("1.00", actual="0.20")
    assert claim(first.public_id) is not None
    waiting = submit("0.50")
    run_job(waiting.public_id)
    assert status(waiting) == Status.PAUSED
    finish(first)
    waiting.refresh_from_db()
    assert waiting.status == Status.QUEUED and waiting.hold_reasons == []
    assert Event.objects.filter(kind="job.released", subject=waiting.public_id).count() == 1
    run_job(waiting.public_id)
    assert status(waiting) == Status.COMPLETED
    assert usage(acme).committed == 700_000


def test_a_freed_slot_releases_one_job_waiting_for_concurrency(acme, submit, set_policy):
    set_policy(acme, max_concurrent=1)
    first = submit("0.10")
    claim(first.public_id)
    second, third = submit("0.10"), submit("0.10")
    run_job(second.public_id)
    run_job(third.public_id)
    second.refresh_from_db()
    assert second.status == Status.PAUSED and second.resume_at is None
    assert second.hold_reasons[0]["kind"] == "concurrency"
    finish(first)
    assert (status(second), status(third)) == (Status.QUEUED, Status.PAUSED)


def test_raising_a_limit_releases_held_jobs_in_priority_then_age_order(acme, submit, set_policy):
    set_policy(acme, daily_limit="1.00")
    claim(submit("1.00").public_id)
    old, urgent, young = submit("0.10"), submit("0.10", priority=5), submit("0.10")
    for job in (old, urgent, young):
        run_job(job.public_id)
        assert status(job) == Status.PAUSED
    set_policy(acme, daily_limit="10.00")
    released = list(Event.objects.filter(kind="job.released").order_by("id").values_list("subject", flat=True))
    assert released == [urgent.public_id, old.public_id, young.public_id]
    assert [status(j) for j in (old, urgent, young)] == [Status.QUEUED] * 3


def test_a_release_counts_the_jobs_sent_ahead_against_their_own_handler_s_cap_only(acme, submit, set_policy):
    set_policy(acme, max_concurrent=1, handler_caps={OTHER: {"daily": "6.00"}})
    claim(submit("0.10").public_id)
    paid, other, second_other = submit("5.00"), submit("5.00", handler_name=OTHER), submit("5.00", handler_name=OTHER)
    for job in (paid, other, second_other):
        run_job(job.public_id)
        assert status(job) == Status.PAUSED
    set_policy(acme, max_concurrent=10)
    # The test.paid job released first takes none of test.other's cap: 5 of its 6 are free; the
    # second test.other job would take them past it.
    other.refresh_from_db()
    assert (status(paid), other.status) == (Status.QUEUED, Status.QUEUED), other.hold_reasons
    second_other.refresh_from_db()
    assert second_other.status == Status.PAUSED
    assert [(r["kind"], r["scope"], r["reserved"]) for r in second_other.hold_reasons] == [("budget", OTHER, "5")]


def test_a_person_s_hold_is_never_released_by_the_budget(acme, submit, set_policy):
    set_policy(acme, daily_limit="1.00")
    manual = job_pause(job=submit("0.10"), by="alice")
    set_policy(acme, daily_limit="2.00")
    assert status(manual) == Status.PAUSED


def test_a_rate_hold_resumes_when_the_oldest_start_leaves_the_minute(acme, submit, set_policy):
    set_policy(acme, calls_per_minute=1)
    run_job(submit("0.10").public_id)
    held = submit("0.10")
    run_job(held.public_id)
    held.refresh_from_db()
    start = Start.objects.get(team=acme)
    assert held.status == Status.PAUSED and held.hold_reasons[0]["kind"] == "rate"
    assert held.resume_at == start.at + timedelta(seconds=60)


def test_a_job_submitted_when_the_minute_frees_a_start_does_not_take_it_from_a_job_held_before(
        acme, submit, set_policy):
    """The start freed when the oldest leaves the minute belongs to the job held for it, first in
    the team's order: a job submitted then, claimed before the ticker's release came round, took
    it, and the held job was held again for another minute (and again, under a steady stream).
    The submit's answer, and its preview, say so beforehand."""
    from jobs.services import job_release_due, job_submit, job_submit_preview

    set_policy(acme, calls_per_minute=1)
    run_job(submit("0.10").public_id)
    held = submit("0.10")
    run_job(held.public_id)
    assert status(held) == Status.PAUSED
    # The minute goes by (the gate reads the database's clock: the start is moved back instead).
    Start.objects.filter(team=acme).update(at=timezone.now() - timedelta(seconds=61))
    Job.objects.filter(pk=held.pk).update(resume_at=timezone.now() - timedelta(seconds=1))
    behind = "0 starts in the last 60 s; the limit is 1 per minute, and 1 job held before this one waits for a start."
    preview = job_submit_preview(team=acme, handler="test.paid", payload={"cost": "0.10"})
    submission = job_submit(team=acme, handler="test.paid", payload={"cost": "0.10"}, source="api")
    assert [r["message"] for r in preview.would_hold] == [r["message"] for r in submission.would_hold] == [behind]
    newer = submission.job
    run_job(newer.public_id)  # its worker is quicker than the ticker
    newer.refresh_from_db()
    assert newer.status == Status.PAUSED, "a newer job took the start a held job waited for"
    assert [r["message"] for r in newer.hold_reasons] == [behind]
    job_release_due()
    run_job(held.public_id)
    assert status(held) == Status.COMPLETED
    assert status(newer) == Status.PAUSED and newer.resume_at is not None


def test_a_job_submitted_when_a_slot_frees_does_not_take_it_from_a_job_held_before(acme, submit, set_policy,
                                                                                   monkeypatch):
    set_policy(acme, max_concurrent=1)
    running = submit("0.10")
    claim(running.public_id)
    held = submit("0.10")
    run_job(held.public_id)
    assert status(held) == Status.PAUSED
    running.refresh_from_db()
    # Settled by a worker whose release of the held job is yet to come (it follows the commit).
    from jobs import runner

    released = runner._release_held
    monkeypatch.setattr(runner, "_release_held", lambda team_id: None)
    finish(running)
    newer = submit("0.10")
    run_job(newer.public_id)
    newer.refresh_from_db()
    assert newer.status == Status.PAUSED, "a newer job took the slot a held job waited for"
    assert newer.hold_reasons[0]["message"] == (
        "0 jobs are running; the limit is 1 at a time, and 1 job held before this one waits for a slot.")
    released(acme.pk)
    run_job(held.public_id)
    assert status(held) == Status.COMPLETED


@pytest.mark.parametrize("room", ["slot", "start"])
def test_a_job_held_for_room_and_money_does_not_keep_the_jobs_behind_it_from_the_room(acme, submit, set_policy,
                                                                                     monkeypatch, room):
    """It can take no slot or start before its money comes (tomorrow): the ticker's pass says so as
    soon as the room is there, even when the settle's own release did not come (it failed, or the
    repair freed the slot), so the jobs behind it, held for the room, are not held behind it all day."""
    from jobs import runner
    from jobs.services import job_release_due

    limit = {"max_concurrent": 1} if room == "slot" else {"calls_per_minute": 1}
    set_policy(acme, daily_limit="1.00", **limit)
    running = submit("0.50")
    claim(running.public_id)
    big, small = submit("0.90"), submit("0.10")
    run_job(big.public_id)
    run_job(small.public_id)
    kind = "concurrency" if room == "slot" else "rate"
    assert [r["kind"] for r in Job.objects.get(pk=big.pk).hold_reasons] == [kind, "budget"]
    monkeypatch.setattr(runner, "_release_held", lambda team_id: None)
    finish(running)
    if room == "start":  # the minute goes by
        Start.objects.filter(team=acme).update(at=timezone.now() - timedelta(seconds=61))
        Job.objects.filter(pk=small.pk).update(resume_at=timezone.now() - timedelta(seconds=1))
    job_release_due()
    run_job(small.public_id)
    assert status(small) == Status.COMPLETED
    big.refresh_from_db()
    assert (big.status, [r["kind"] for r in big.hold_reasons]) == (Status.PAUSED, ["budget"])


def test_a_cap_lowered_under_the_running_jobs_stops_none_of_them_and_holds_the_next_until_under_it(
        acme, submit, set_policy):
    set_policy(acme, max_concurrent=3, daily_limit="5.00")
    running = [submit("0.10") for _ in range(3)]
    for job in running:
        assert claim(job.public_id) is not None
    set_policy(acme, max_concurrent=1, daily_limit="0.50")  # money too: 0.30 reserved, 0.20 left
    waiting = submit("0.10")
    run_job(waiting.public_id)
    assert status(waiting) == Status.PAUSED
    assert [r["kind"] for r in Job.objects.get(pk=waiting.pk).hold_reasons] == ["concurrency"]
    for left, job in zip((2, 1, 0), running):
        assert status(job) == Status.RUNNING  # lowered limits stop nothing that runs
        finish(job)
        assert (status(job), BudgetPolicy.objects.get(team=acme).running) == (Status.COMPLETED, left)
        # Held while two, then one, still run against a cap of one; queued again once none does.
        assert status(waiting) == (Status.QUEUED if left == 0 else Status.PAUSED)
    run_job(waiting.public_id)
    assert status(waiting) == Status.COMPLETED
    assert (usage(acme).committed, usage(acme).reserved) == (400_000, 0)


def test_a_rate_lowered_under_the_starts_counted_resumes_when_enough_of_them_have_left(acme, submit, set_policy):
    set_policy(acme, calls_per_minute=10)
    for _ in range(4):
        run_job(submit("0.10").public_id)
    set_policy(acme, calls_per_minute=2)
    held = submit("0.10")
    run_job(held.public_id)
    held.refresh_from_db()
    starts = sorted(Start.objects.filter(team=acme).values_list("at", flat=True))
    assert held.status == Status.PAUSED and held.hold_reasons[0]["kind"] == "rate"
    # 4 starts against 2: the count is under the limit once the three oldest have left the minute
    # (the oldest's leaving leaves 3, still over: the job would be held again then).
    assert len(starts) == 4 and starts[0] < starts[2]
    assert held.resume_at == starts[2] + timedelta(seconds=60)
    assert held.hold_reasons[0]["resume_at"] == held.resume_at.isoformat()


def test_an_owner_s_override_lets_jobs_through_budget_limits_and_its_spend_counts(acme, alice, bob, submit,
                                                                                  set_policy):
    set_policy(acme, daily_limit="1.00")
    run_job(submit("1.00").public_id)
    held = submit("0.60")
    run_job(held.public_id)
    assert status(held) == Status.PAUSED
    owner = Membership.objects.get(team=acme, user=alice)
    member = Membership.objects.get(team=acme, user=bob)
    with pytest.raises(PermissionDenied):
        budget_override_create(team=acme, amount="1.00", expires_at=timezone.now() + timedelta(hours=1),
                               reason="launch day", by=member)
    override = budget_override_create(team=acme, amount="1.00", expires_at=timezone.now() + timedelta(hours=1),
                                      reason="launch day", by=owner)
    assert status(held) == Status.QUEUED  # released by the override
    run_job(held.public_id)
    held.refresh_from_db()
    assert held.status == Status.COMPLETED and held.pulse_state["override"] == override.public_id
    override.refresh_from_db()
    assert override.spent == 600_000
    assert usage(acme).committed == 1_600_000
    too_big = submit("0.50")
    run_job(too_big.public_id)
    assert status(too_big) == Status.PAUSED  # 0.60 + 0.50 is over the override's 1.00


def test_an_override_does_not_lift_rate_limits(acme, alice, submit, set_policy):
    set_policy(acme, calls_per_minute=1)
    budget_override_create(team=acme, amount="5.00", expires_at=timezone.now() + timedelta(hours=1),
                           reason="x", by=Membership.objects.get(team=acme, user=alice))
    run_job(submit("0.10").public_id)
    held = submit("0.10")
    run_job(held.public_id)
    assert status(held) == Status.PAUSED


def test_alerts_fire_once_per_threshold_and_window(acme, submit, set_policy):
    set_policy(acme, daily_limit="1.00")
    for cost in ("0.50", "0.30", "0.10", "0.10"):
        run_job(submit(cost).public_id)
    alerts = list(Alert.objects.filter(team=acme).order_by("threshold").values_list("threshold", "spent"))
    assert alerts == [(80, 800_000), (100, 1_000_000)]
    assert Event.objects.filter(kind="budget.alert").count() == 2


def test_a_retried_attempt_reserves_again_and_each_attempt_is_charged_what_it_reported(acme, submit, set_policy,
                                                                                       temp_handler):
    from jobs.error_codes import JobError
    from jobs.services import job_submit

    @temp_handler("test.flaky", cost="1.00", max_attempts=2)
    def flaky(ctx):
        ctx.report_cost("0.30")
        if ctx.attempt == 1:
            raise JobError("network_error", "down", retryable=True)
        return {}

    set_policy(acme, daily_limit="1.50")
    job = job_submit(team=acme, handler="test.flaky", payload={}, source=Job.Source.API).job
    run_job(job.public_id)
    job.refresh_from_db()
    # The failed attempt's 0.30 is charged and the rest of its 1.00 released: the retry fits in 1.50.
    assert (job.status, job.attempts, usage(acme).committed, usage(acme).reserved) == (Status.QUEUED, 1, 300_000, 0)
    Job.objects.filter(pk=job.pk).update(run_after=None)  # its backoff over
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.cost_actual) == (Status.COMPLETED, 2, 600_000)
    assert (usage(acme).committed, usage(acme).reserved) == (600_000, 0)
    entries = list(Ledger.objects.filter(job_id=job.public_id, scope="", window_kind="day").order_by("id")
                   .values_list("attempt", "kind", "amount"))
    assert entries == [(1, "reserve", 1_000_000), (1, "release", 1_000_000), (1, "charge", 300_000),
                       (2, "reserve", 1_000_000), (2, "release", 1_000_000), (2, "charge", 300_000)]
    assert BudgetPolicy.objects.get(team=acme).running == 0
    assert budget_repair(team_id=acme.pk) == []


def test_settling_twice_charges_once(acme, submit, set_policy):
    set_policy(acme, daily_limit="5.00")
    job = submit("0.50")
    claim(job.public_id)
    job.refresh_from_db()
    budget_settle(job=job, actual_micros=300_000)
    budget_settle(job=job, actual_micros=300_000)
    assert (usage(acme).committed, usage(acme).reserved) == (300_000, 0)
    assert BudgetPolicy.objects.get(team=acme).running == 0


def test_a_rescued_job_is_charged_its_estimate_and_frees_its_slot(acme, submit, set_policy):
    set_policy(acme, daily_limit="5.00", max_concurrent=1)
    job = submit("0.70")
    claim(job.public_id)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert rescue_expired() == 1
    assert (usage(acme).committed, usage(acme).reserved) == (700_000, 0)
    assert BudgetPolicy.objects.get(team=acme).running == 0


def test_repair_rebuilds_usage_from_the_ledger_and_reports_the_drift(acme, submit, set_policy):
    set_policy(acme, daily_limit="5.00")
    run_job(submit("0.70").public_id)
    claim(submit("0.20").public_id)
    Usage.objects.filter(team=acme, scope="", kind="day").update(committed=1, reserved=2)
    BudgetPolicy.objects.filter(team=acme).update(running=7)
    drifts = budget_repair(team_id=acme.pk)
    assert (usage(acme).committed, usage(acme).reserved) == (700_000, 200_000)
    assert BudgetPolicy.objects.get(team=acme).running == 1
    assert len(drifts) == 2
    assert Event.objects.get(kind="budget.drift").payload["drifts"] == drifts
    assert budget_repair(team_id=acme.pk) == []


def test_repair_reports_drifts_in_the_same_order_in_every_process(acme, submit, set_policy):
    """The team's windows before a handler's, each day, week, month: the order came from a set of
    keys holding strings, so it changed with each process's hash seed (the event's payload too)."""
    set_policy(acme, daily_limit="5.00")
    run_job(submit("0.70").public_id)
    Usage.objects.filter(team=acme).update(committed=1)
    drifts = budget_repair(team_id=acme.pk)
    assert [(d["scope"], d["window"]) for d in drifts] == [
        ("", "day"), ("", "week"), ("", "month"), ("test.paid", "day"), ("test.paid", "week"), ("test.paid", "month")]


def test_submit_refuses_an_estimate_above_a_limit(acme, submit, set_policy):
    set_policy(acme, weekly_limit="2.00", handler_caps={"test.paid": {"monthly": "1.50"}})
    with pytest.raises(Unprocessable) as refused:
        submit("2.50")
    assert "weekly limit of 2" in refused.value.message
    with pytest.raises(Unprocessable) as capped:
        submit("1.60")
    assert "monthly cap of handler test.paid of 1.5" in capped.value.message
    assert not Job.objects.exists()
    assert submit("1.60", handler_name=OTHER).status == Status.QUEUED


def test_the_gate_reads_the_database_clock(acme, submit, set_policy, time_machine):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no clock of its own; the embedded default uses Python's")
    set_policy(acme, calls_per_minute=5)
    time_machine.move_to(timezone.now() - timedelta(hours=3), tick=True)
    before = timezone.now()
    run_job(submit("0.10").public_id)
    assert Start.objects.get(team=acme).at > before + timedelta(hours=2)


def test_a_job_whose_estimate_is_over_a_lowered_limit_waits_for_a_higher_limit_not_a_window(acme, submit,
                                                                                              set_policy):
    job = submit("2.00")
    set_policy(acme, daily_limit="1.00")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.PAUSED and job.resume_at is None
    assert job.hold_reasons[0]["message"] == ("The estimate of 2 alone is over the team's daily limit of 1; it runs "
                                              "once the limit is raised or an owner makes an override.")
    set_policy(acme, daily_limit="2.00")
    assert status(job) == Status.QUEUED


def test_old_starts_are_pruned_by_the_ticker(acme, submit, set_policy):
    from pulse_site.ticker import run_once

    Start.objects.create(team=acme, at=timezone.now() - timedelta(seconds=61))
    Start.objects.create(team=acme, at=timezone.now())
    assert run_once(["budgets.prune_starts"]) == {"budgets.prune_starts": True}
    assert Start.objects.filter(team=acme).count() == 1


def test_freed_money_releases_only_as_many_held_jobs_as_fit(acme, submit, set_policy):
    set_policy(acme, daily_limit="1.00")
    first = submit("1.00", actual="0.10")
    claim(first.public_id)
    held = [submit("0.40") for _ in range(4)]
    for job in held:
        run_job(job.public_id)
    finish(first)  # 0.90 is free again: two jobs of 0.40 fit, the third would not
    assert [status(job) for job in held] == [Status.QUEUED, Status.QUEUED, Status.PAUSED, Status.PAUSED]


def test_the_repair_step_fixes_every_team_s_drift(acme, globex, submit, set_policy):
    from pulse_site.ticker import run_once

    set_policy(acme, daily_limit="5.00")
    set_policy(globex, daily_limit="5.00")
    run_job(submit("0.30").public_id)
    run_job(submit("0.20", team=globex).public_id)
    Usage.objects.filter(scope="", kind="day").update(committed=0)
    assert run_once(["budgets.repair"]) == {"budgets.repair": True}
    assert (usage(acme).committed, usage(globex).committed) == (300_000, 200_000)
    assert sorted(Event.objects.filter(kind="budget.drift").values_list("team_id", flat=True)) == sorted(
        [acme.pk, globex.pk])
