"""Each rule kind against real job, budget and hold events, and the match cursor's gap grace."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from budgets.services import budget_policy_update
from jobs.models import Job
from jobs.runner import run_job
from jobs.services import job_cancel, job_pause, job_resume, job_submit
from pulse_site.live.models import Event, RelayCursor
from pulse_site.live.services import event_emit
from pulse_site.notifications.models import HoldTimer, Rule
from pulse_site.notifications.services import (
    CURSOR_NAME,
    holds_due,
    notifications_match,
    rule_create,
    rule_update,
    target_create,
    target_update,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ops(acme):
    return target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)


def deliveries() -> list[Job]:
    return list(Job.objects.filter(handler="pulse.notify").order_by("id"))


def held_job(acme, handler: str = "pulse.noop") -> Job:
    job = job_submit(team=acme, handler=handler, payload={}, source="api").job
    return job_pause(job=job, by="alice")


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(timezone.now(), tick=True)
    return time_machine


# --- held longer than N minutes ---------------------------------------------------------------------


def test_a_job_held_longer_than_n_minutes_is_told_once_per_hold(acme, ops, clock):
    rule_create(team=acme, target=ops, kind=Rule.Kind.HELD_LONG, minutes=5, by=None)
    notifications_match()
    job = held_job(acme)
    assert notifications_match() == 0  # the hold began; nothing is due yet
    clock.shift(timedelta(minutes=4))
    assert notifications_match() == 0

    clock.shift(timedelta(minutes=2))
    assert notifications_match() == 1
    [delivery] = deliveries()
    assert delivery.payload["subject"] == f"Job {job.public_id} (pulse.noop) held for more than 5 min"
    assert delivery.payload["text"] == "Held by alice."  # the reasons as sentences, as the job page says them
    assert delivery.payload["event"]["kind"] == "job.held_long"
    for _ in range(3):  # later ticks of the same hold send nothing
        clock.shift(timedelta(minutes=10))
        assert notifications_match() == 0
    run_job(delivery.public_id)
    assert mail.outbox[0].subject == delivery.payload["subject"]


def test_a_job_released_before_n_minutes_sends_nothing(acme, ops, clock):
    rule_create(team=acme, target=ops, kind=Rule.Kind.HELD_LONG, minutes=5, by=None)
    notifications_match()
    job = held_job(acme)
    notifications_match()
    clock.shift(timedelta(minutes=3))
    job_resume(job=job, by="alice")
    assert notifications_match() == 0
    clock.shift(timedelta(minutes=30))
    assert notifications_match() == 0
    assert deliveries() == [] and not HoldTimer.objects.exists()


def test_a_timer_falling_due_before_the_release_is_read_still_sends_nothing(acme, ops, clock):
    rule_create(team=acme, target=ops, kind=Rule.Kind.HELD_LONG, minutes=5, by=None)
    notifications_match()
    job = held_job(acme)
    notifications_match()
    clock.shift(timedelta(minutes=3))
    job_cancel(job=job, by="alice")
    clock.shift(timedelta(minutes=3))
    assert holds_due() == 0  # the job's row says it is no longer held; its event is not read yet
    assert deliveries() == [] and not HoldTimer.objects.exists()


def test_a_release_and_new_hold_not_read_yet_are_waited_for(acme, ops, clock):
    rule_create(team=acme, target=ops, kind=Rule.Kind.HELD_LONG, minutes=5, by=None)
    notifications_match()
    job = held_job(acme)
    notifications_match()
    clock.shift(timedelta(minutes=5, seconds=30))
    job_resume(job=job, by="alice")
    job_pause(job=Job.objects.get(pk=job.pk), by="alice")
    assert holds_due() == 0  # held again, but not the hold the timer was timing
    assert HoldTimer.objects.count() == 1
    assert notifications_match() == 0  # the new hold is timed from now
    clock.shift(timedelta(minutes=5, seconds=30))
    assert notifications_match() == 1


def test_a_second_hold_of_the_same_job_is_timed_afresh(acme, ops, clock):
    rule_create(team=acme, target=ops, kind=Rule.Kind.HELD_LONG, minutes=5, by=None)
    notifications_match()
    job = held_job(acme)
    clock.shift(timedelta(minutes=6))
    assert notifications_match() == 1
    job_resume(job=job, by="alice")
    job_pause(job=Job.objects.get(pk=job.pk), by="alice")
    clock.shift(timedelta(minutes=4))
    assert notifications_match() == 0
    clock.shift(timedelta(minutes=2))
    assert notifications_match() == 1
    assert len(deliveries()) == 2


def test_a_budget_hold_counts_and_the_rule_filters_by_handler(acme, ops, clock, temp_handler):
    @temp_handler("test.paid", cost="0.60", max_attempts=1)
    def paid(ctx):
        return None

    budget_policy_update(team=acme, changes={"daily_limit": "1.00"}, by=None)
    rule_create(team=acme, target=ops, kind=Rule.Kind.HELD_LONG, minutes=1, handlers=["test.paid"], by=None)
    notifications_match()
    run_job(job_submit(team=acme, handler="test.paid", payload={}, source="api").job.public_id)
    over = job_submit(team=acme, handler="test.paid", payload={}, source="api").job
    run_job(over.public_id)  # held by the budget at admission
    assert Job.objects.get(pk=over.pk).status == Job.Status.PAUSED
    other = held_job(acme)  # pulse.noop: not this rule's handler
    clock.shift(timedelta(minutes=2))
    assert notifications_match() == 1
    [delivery] = deliveries()
    assert delivery.payload["event"]["subject"] == over.public_id != other.public_id
    assert "limit" in delivery.payload["text"]


def test_changing_n_moves_holds_already_timed_and_disabling_the_rule_drops_them(acme, ops, clock):
    rule = rule_create(team=acme, target=ops, kind=Rule.Kind.HELD_LONG, minutes=60, by=None)
    notifications_match()
    held_job(acme)
    notifications_match()
    clock.shift(timedelta(minutes=6))
    rule_update(rule=rule, changes={"minutes": 5}, by=None)
    assert notifications_match() == 1

    second = held_job(acme)
    notifications_match()
    rule_update(rule=rule, changes={"enabled": False}, by=None)
    clock.shift(timedelta(minutes=10))
    assert notifications_match() == 0
    assert not HoldTimer.objects.filter(job_id=second.public_id).exists()


# --- failed, budget threshold, overrun ------------------------------------------------------------


def test_every_failed_attempt_is_told_when_the_rule_is_not_last_attempt_only(acme, ops, temp_handler):
    @temp_handler("test.flaky", max_attempts=2, retry_on=["network_error"], backoff_base=60.0)
    def flaky(ctx):
        from jobs.error_codes import ErrorCode, JobError

        raise JobError(ErrorCode.NETWORK_ERROR, "reset by peer", retryable=True)

    last_only = target_create(team=acme, name="last", kind="email", address="last@example.com", by=None)
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, final_only=False, by=None)
    rule_create(team=acme, target=last_only, kind=Rule.Kind.JOB_FAILED, final_only=True, by=None)
    notifications_match()
    job = job_submit(team=acme, handler="test.flaky", payload={}, source="api").job
    run_job(job.public_id)
    assert notifications_match() == 1  # the retry: only the every-attempt rule
    Job.objects.filter(pk=job.pk).update(run_after=None)
    run_job(job.public_id)
    assert Job.objects.get(pk=job.pk).status == Job.Status.FAILED
    assert notifications_match() == 2  # the last attempt: both
    subjects = [(d.origin, d.payload["subject"]) for d in deliveries()]
    assert subjects == [
        (ops.public_id, f"Job {job.public_id} (test.flaky) failed an attempt and will retry"),
        (ops.public_id, f"Job {job.public_id} (test.flaky) failed"),
        (last_only.public_id, f"Job {job.public_id} (test.flaky) failed"),
    ]


def test_a_budget_threshold_crossed_is_told_once(acme, ops, temp_handler):
    @temp_handler("test.paid", cost="0.60", max_attempts=1)
    def paid(ctx):
        return None

    budget_policy_update(team=acme, changes={"daily_limit": "1.00", "alert_thresholds": [50]}, by=None)
    rule_create(team=acme, target=ops, kind=Rule.Kind.BUDGET_THRESHOLD, by=None)
    notifications_match()
    run_job(job_submit(team=acme, handler="test.paid", payload={}, source="api").job.public_id)
    assert notifications_match() == 1
    [delivery] = deliveries()
    assert delivery.payload["subject"] == "Budget alert"
    assert delivery.payload["text"] == "The team has spent 0.6 of its daily limit of 1 (50 % reached)."
    run_job(job_submit(team=acme, handler="test.paid", payload={}, source="api").job.public_id)
    assert notifications_match() == 0  # the 50 % threshold of this day has fired already


def test_an_overrun_is_told_with_estimate_and_actual(acme, ops, temp_handler):
    @temp_handler("test.over", cost="0.50", max_attempts=1)
    def over(ctx):
        ctx.report_cost("0.90")

    rule_create(team=acme, target=ops, kind=Rule.Kind.OVERRUN, by=None)
    notifications_match()
    job = job_submit(team=acme, handler="test.over", payload={}, source="api").job
    run_job(job.public_id)
    assert notifications_match() == 1
    [delivery] = deliveries()
    assert delivery.payload["subject"] == f"Job {job.public_id} cost more than estimated"
    assert delivery.payload["text"] == "test.over: estimate 0.5, actual 0.9"


def test_disabled_rules_and_targets_hear_nothing(acme, ops, temp_handler):
    @temp_handler("test.breaks", max_attempts=1)
    def breaks(ctx):
        raise RuntimeError("no")

    quiet = target_create(team=acme, name="quiet", kind="email", address="q@example.com", by=None)
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, enabled=False, by=None)
    rule_create(team=acme, target=quiet, kind=Rule.Kind.JOB_FAILED, by=None)
    target_update(target=quiet, changes={"enabled": False}, by=None)
    notifications_match()
    run_job(job_submit(team=acme, handler="test.breaks", payload={}, source="api").job.public_id)
    assert notifications_match() == 0 and deliveries() == []


# --- the cursor waits for a late-committing lower id ------------------------------------------------


def failed_event(team, subject: str) -> Event:
    return event_emit(team=team, kind="job.failed", subject=subject,
                      payload={"handler": "pulse.noop", "error": {"code": "unknown", "message": "x"}})


def cursor_at() -> int:
    return RelayCursor.objects.get(name=CURSOR_NAME).last_id


def test_a_young_gap_holds_the_cursor_until_the_late_event_commits(acme, ops, settings, time_machine):
    settings.PULSE_RELAY_GAP_GRACE = 3.0
    time_machine.move_to(timezone.now(), tick=False)  # young for good: 3 s of a starved core would age it
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    notifications_match()
    first, late, after = (failed_event(acme, f"JB_{n}") for n in range(3))
    row = {"id": late.id, "team_id": late.team_id, "kind": late.kind, "subject": late.subject,
           "payload": late.payload}
    late.delete()  # as if its transaction had not committed yet

    assert notifications_match() == 1  # the first; the one after the gap waits
    assert cursor_at() == first.id
    assert notifications_match() == 0
    Event.objects.create(**row)  # the late commit
    assert notifications_match() == 2
    assert [d.payload["event"]["id"] for d in deliveries()] == [first.id, row["id"], after.id]


def test_a_gap_older_than_the_grace_is_taken_for_a_rollback(acme, ops, settings):
    settings.PULSE_RELAY_GAP_GRACE = 3.0
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    notifications_match()
    rolled_back, after = failed_event(acme, "JB_a"), failed_event(acme, "JB_b")
    rolled_back.delete()
    Event.objects.filter(pk=after.pk).update(created_at=timezone.now() - timedelta(seconds=4))
    assert notifications_match() == 1
    assert cursor_at() == after.id


def test_an_event_committing_after_the_grace_is_still_matched_once(acme, ops, settings):
    settings.PULSE_RELAY_GAP_GRACE = 3.0
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    notifications_match()
    slow, after = failed_event(acme, "JB_a"), failed_event(acme, "JB_b")
    row = {"id": slow.id, "team_id": slow.team_id, "kind": slow.kind, "subject": slow.subject,
           "payload": slow.payload}
    slow.delete()  # its transaction is held up past the grace
    Event.objects.filter(pk=after.pk).update(created_at=timezone.now() - timedelta(seconds=4))
    assert notifications_match() == 1
    Event.objects.create(**row)  # and commits
    assert notifications_match() == 1
    assert notifications_match() == 0
    assert sorted(d.payload["event"]["id"] for d in deliveries()) == [row["id"], after.id]


@pytest.mark.postgres
def test_an_event_committed_after_a_higher_id_is_still_matched(acme, ops, settings):
    """Two real transactions: the one that took the lower id commits last."""
    if not settings.IS_POSTGRES:
        pytest.skip("SQLite writers queue on the database lock: a lower id can never commit after a higher one")
    settings.PULSE_RELAY_GAP_GRACE = 30.0
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    notifications_match()
    emitted, commit = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                failed_event(acme, "JB_slow")
                emitted.set()
                commit.wait(timeout=20)
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert emitted.wait(timeout=20)
        failed_event(acme, "JB_fast")  # a higher id, committed first
        assert notifications_match() == 0  # waits at the gap instead of skipping it
    finally:
        commit.set()
        writer.join()
    assert notifications_match() == 2
    assert sorted(d.payload["event"]["subject"] for d in deliveries()) == ["JB_fast", "JB_slow"]


def test_matching_costs_the_same_queries_for_ten_events_or_three_hundred(acme, ops, globex):
    """Rules, watches and timers are read once per batch, not per event."""
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    notifications_match()

    def queries_for(count: int) -> int:
        for n in range(count):
            event_emit(team=globex, kind=("job.completed", "job.started", "job.progress")[n % 3], subject=f"JB_{n}",
                       payload={"handler": "pulse.noop"})
        Event.objects.update(created_at=timezone.now() - timedelta(seconds=10))  # no gap waits
        with CaptureQueriesContext(conn) as captured:
            assert notifications_match() == 0
        return len(captured)

    assert queries_for(10) == queries_for(300)


# --- one delivery per target and event ----------------------------------------------------------------


def test_a_target_hears_of_an_event_once_whichever_of_its_rules_and_watches_match(acme, ops):
    from pulse_site.notifications.services import job_watch_add

    other = target_create(team=acme, name="other", kind="email", address="other@example.com", by=None)
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, error_codes=["timeout"], final_only=False, by=None)
    rule_create(team=acme, target=other, kind=Rule.Kind.JOB_FAILED, by=None)
    notifications_match()
    job = job_submit(team=acme, handler="pulse.fail", payload={"code": "timeout", "retryable": False},
                     source="api").job
    job_watch_add(job=job, target=ops)
    run_job(job.public_id)

    assert notifications_match() == 2
    assert [(d.origin, d.payload["subject"], d.payload["event"]["kind"]) for d in deliveries()] == [
        (ops.public_id, f"Job {job.public_id} (pulse.fail) failed", "job.failed"),
        (other.public_id, f"Job {job.public_id} (pulse.fail) failed", "job.failed"),
    ]


def test_a_watch_of_a_target_disabled_since_the_submit_sends_nothing(acme, ops):
    from pulse_site.notifications.models import JobWatch
    from pulse_site.notifications.services import job_watch_add

    notifications_match()
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    job_watch_add(job=job, target=ops)
    target_update(target=ops, changes={"enabled": False}, by=None)
    run_job(job.public_id)

    assert notifications_match() == 0
    assert deliveries() == [] and not JobWatch.objects.exists()


# --- two tickers at once ----------------------------------------------------------------------------


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="SQLite runs one writer at a time")
def test_two_tickers_matching_at_once_queue_each_event_and_each_due_hold_once(acme, ops, clock):
    from django.db import connections

    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    rule_create(team=acme, target=ops, kind=Rule.Kind.HELD_LONG, minutes=1, by=None)
    notifications_match()
    subjects = [f"JB_{n:026d}" for n in range(60)]
    for subject in subjects:
        failed_event(acme, subject)
    held = [held_job(acme) for _ in range(5)]
    clock.shift(timedelta(seconds=5))  # past the gap grace: every event is readable
    assert notifications_match() == 60  # and the holds' timers start
    clock.shift(timedelta(minutes=2))  # every hold is due
    for subject in subjects:  # and 60 more events arrive
        failed_event(acme, subject)
    clock.shift(timedelta(seconds=5))
    barrier, counts, errors = threading.Barrier(2), [], []

    def ticker():
        try:
            barrier.wait(timeout=30)
            counts.append(sum(notifications_match(limit=7, max_batches=1) for _ in range(30)))
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ticker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # One of them reads while the other holds the cursor (SKIP LOCKED: it reads nothing); what
    # is left after their thirty rounds each is the next run's.
    assert errors == [] and sum(counts) + notifications_match() == 60 + 5
    told = [d.payload["event"]["subject"] for d in deliveries()]
    assert sorted(told) == sorted(subjects * 2 + [job.public_id for job in held])
    assert not HoldTimer.objects.exists()
