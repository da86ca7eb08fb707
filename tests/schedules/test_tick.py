"""The tick with the clock controlled: slots, misfire policies, overlap, broken schedules, follow-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.handlers.registry import unregister
from jobs.models import Job
from jobs.runner import run_job
from pulse_site.live.models import Event
from schedules.models import Execution, Schedule
from schedules.services import executions_follow, schedule_update, schedules_tick

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 10, 0, 0, tzinfo=UTC)


def at(hour, minute, second=0):
    return datetime(2026, 6, 1, hour, minute, second, tzinfo=UTC)


def fire_times(schedule):
    return list(Execution.objects.filter(schedule=schedule).order_by("fire_time").values_list("fire_time", flat=True))


def test_a_due_schedule_fires_once_and_moves_to_its_next_slot(make_schedule, time_machine):
    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(cron="*/15 * * * *")
    time_machine.move_to(at(10, 15), tick=False)
    result = schedules_tick()
    assert (result.fired, result.skipped, result.broken) == (1, 0, 0)
    assert schedules_tick().fired == 0
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(10, 30)
    assert schedule.last_run_at == at(10, 15)
    execution = Execution.objects.get()
    assert (execution.fire_time, execution.trigger, execution.job.source) == (at(10, 15), "cron", "schedule")
    assert execution.job.created_by == f"schedule {schedule.public_id}"


def test_next_run_is_computed_from_the_slot_not_from_a_late_tick(make_schedule, time_machine):
    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(cron="*/15 * * * *")
    time_machine.move_to(at(10, 15, 40), tick=False)  # 40 s late: still on time, and no drift
    assert schedules_tick().fired == 1
    schedule.refresh_from_db()
    assert (fire_times(schedule), schedule.next_run_at) == ([at(10, 15)], at(10, 30))


MISSED = "No ticker ran at its slots from 2026-06-01 10:15 UTC to 13:00 UTC: "


@pytest.mark.parametrize(("policy", "expected", "jobs"), [
    # Nothing runs, and the history says what was missed rather than staying silent for three hours.
    ("skip", [(at(13, 0), "skipped", MISSED + "after downtime this schedule skips the runs missed.")], 0),
    ("once", [(at(13, 0), "queued", MISSED + "after downtime this schedule runs once for them all: this run.")], 1),
    ("all", [(at(10, 45), "queued", MISSED + "after downtime this schedule runs each of them, the latest 10 at most: "
                                              "this run and the 9 after it.")]
     + [(at(10, 45) + timedelta(minutes=15 * i), "queued", "") for i in range(1, 10)], 10),
])
def test_misfire_policies_after_a_three_hour_gap(make_schedule, time_machine, policy, expected, jobs):
    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(cron="*/15 * * * *", misfire_policy=policy, overlap_policy="allow")
    time_machine.move_to(at(13, 7), tick=False)  # 12 slots (10:15 … 13:00) were missed
    schedules_tick()
    schedule.refresh_from_db()
    runs = Execution.objects.filter(schedule=schedule).select_related("job").order_by("fire_time")
    assert [(e.fire_time, e.status, e.reason) for e in runs] == expected
    assert schedule.next_run_at == at(13, 15)
    assert Job.objects.count() == jobs


def test_a_next_run_at_no_slot_of_the_expression_is_moved_on_not_broken(make_schedule, time_machine):
    # Written around the services (a data fix, a restore): late, yet with no slot of the
    # expression in it to say was missed.
    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(cron="*/15 * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=at(10, 7))
    time_machine.move_to(at(10, 8, 30), tick=False)
    assert (schedules_tick().broken, fire_times(schedule)) == (0, [])
    schedule.refresh_from_db()
    assert (schedule.broken_reason, schedule.next_run_at) == ("", at(10, 15))


def test_a_slot_on_time_after_downtime_runs_as_usual_and_the_missed_ones_are_named(make_schedule, time_machine):
    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(cron="*/15 * * * *", misfire_policy="skip", overlap_policy="allow",
                             time_zone="Europe/Berlin")
    time_machine.move_to(at(13, 0, 20), tick=False)  # back at 13:00: 10:15 … 12:45 were missed
    assert (schedules_tick().fired, schedules_tick().fired) == (1, 0)
    runs = Execution.objects.filter(schedule=schedule).select_related("job").order_by("fire_time")
    assert [(e.fire_time, e.status, e.reason) for e in runs] == [
        (at(12, 45), "skipped", "No ticker ran at its slots from 2026-06-01 12:15 CEST to 14:45 CEST: after downtime "
                                "this schedule skips the runs missed."),
        (at(13, 0), "queued", "")]


def test_overlap_skip_holds_back_a_run_while_the_previous_job_runs(make_schedule, time_machine):
    time_machine.move_to(T0, tick=False)
    make_schedule(cron="* * * * *", overlap_policy="skip")
    time_machine.move_to(at(10, 1), tick=False)
    schedules_tick()
    first = Execution.objects.get()
    Job.objects.filter(pk=first.job_id).update(status=Job.Status.RUNNING, started_at=at(10, 1))
    time_machine.move_to(at(10, 2), tick=False)
    assert schedules_tick().skipped == 1
    skipped = Execution.objects.get(fire_time=at(10, 2))
    assert (skipped.job, skipped.status) == (None, "skipped")
    assert skipped.reason == f"Skipped: the run of {first.job.public_id} is still running."
    assert Event.objects.filter(subject=skipped.public_id).values_list("kind", flat=True).get() == "execution.skipped"
    Job.objects.filter(pk=first.job_id).update(status=Job.Status.COMPLETED, completed_at=at(10, 2, 30))
    time_machine.move_to(at(10, 3), tick=False)
    assert schedules_tick().fired == 1
    assert Job.objects.count() == 2


@pytest.mark.parametrize("policy", ["queue", "allow"])
def test_overlap_queue_and_allow_submit_while_the_previous_job_runs(make_schedule, time_machine, policy):
    time_machine.move_to(T0, tick=False)
    make_schedule(cron="* * * * *", overlap_policy=policy)
    time_machine.move_to(at(10, 1), tick=False)
    schedules_tick()
    Job.objects.update(status=Job.Status.RUNNING)
    time_machine.move_to(at(10, 2), tick=False)
    assert schedules_tick().fired == 1
    assert Job.objects.count() == 2


def test_a_broken_schedule_of_one_team_does_not_stop_another_teams_schedule(
        acme, globex, make_schedule, temp_handler, time_machine):
    @temp_handler("test.fragile", schema={"type": "object"})
    def fragile(ctx):
        return None

    time_machine.move_to(T0, tick=False)
    broken = make_schedule(team=acme, name="A", cron="*/15 * * * *", handler="test.fragile")
    healthy = make_schedule(team=globex, name="B", cron="*/15 * * * *", overlap_policy="allow")
    unregister("test.fragile")  # a deployment removed the handler
    time_machine.move_to(at(10, 15), tick=False)
    result = schedules_tick()
    # At its slot it is left to a ticker that has the handler (tests/schedules/test_tick.py::
    # test_a_ticker_without_the_handler_leaves_the_slot_to_one_that_has_it); none has, and a
    # minute later, its slot missed, it is broken.
    assert (result.fired, result.broken) == (1, 0)
    time_machine.move_to(at(10, 16, 1), tick=False)
    assert (schedules_tick().broken, Job.objects.count()) == (1, 1)
    broken.refresh_from_db()
    assert broken.broken_reason == "handler: no handler is called 'test.fragile'."
    assert fire_times(healthy) == [at(10, 15)]
    assert fire_times(broken) == []
    time_machine.move_to(at(10, 30), tick=False)
    assert schedules_tick().fired == 1
    assert Event.objects.filter(kind="schedule.broken").values_list("subject", flat=True).get() == broken.public_id
    healed = schedule_update(schedule=broken, changes={"handler": "pulse.noop"})
    assert (healed.broken_reason, healed.next_run_at) == ("", at(10, 45))


def test_a_payload_the_handler_no_longer_accepts_breaks_the_schedule(make_schedule, temp_handler, time_machine):
    state = {"strict": False}

    def estimate(payload):
        if state["strict"]:
            raise RuntimeError("pricing service down")
        return "0.01"

    @temp_handler("test.priced", cost=estimate)
    def priced(ctx):
        return None

    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(handler="test.priced")
    state["strict"] = True
    time_machine.move_to(at(10, 15), tick=False)
    assert schedules_tick().broken == 1
    schedule.refresh_from_db()
    assert schedule.broken_reason == "payload: The cost estimator of test.priced failed: RuntimeError: pricing service down"
    assert (Execution.objects.count(), Job.objects.count()) == (0, 0)


@pytest.mark.parametrize(("cron", "reason"), [
    ("R * * * *", "minute 'R': random (R) and hashed (H) values are not supported"),
    ("0 0 15 * 5#3", "day of week: '5#3' picks the days on its own"),
])
def test_a_schedule_saved_with_a_form_now_refused_is_marked_broken_at_its_slot_not_fired_at_random(
        make_schedule, time_machine, cron, reason):
    """Random values (R) and a day form beside the other day field were taken, and ran at times
    no preview showed; one saved then no longer fires: its slot breaks it, with the reason, and
    an edit heals it."""
    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(cron="*/15 * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(cron=cron)
    time_machine.move_to(at(10, 15), tick=False)
    assert (schedules_tick().broken, fire_times(schedule)) == (1, [])
    schedule.refresh_from_db()
    assert schedule.broken_reason.startswith(f"cron: Not a valid cron expression: {reason}")
    schedule_update(schedule=schedule, changes={"cron": "20 * * * *"})
    time_machine.move_to(at(10, 20), tick=False)
    assert (schedules_tick().fired, fire_times(schedule)) == (1, [at(10, 20)])


def test_a_disabled_schedule_does_not_fire(make_schedule, time_machine):
    time_machine.move_to(T0, tick=False)
    make_schedule(enabled=False)
    time_machine.move_to(at(11, 0), tick=False)
    assert schedules_tick().schedules == 0


@pytest.mark.django_db(transaction=True)
def test_an_execution_follows_its_job_to_completion_and_says_so_once(make_schedule, settings):
    settings.PULSE_PROGRESS_INTERVAL = 0
    # A daily slot already passed today: exactly one run is due, whatever second the test starts at
    # (an every-minute schedule could see its next slot come due too when the minute turned).
    schedule = make_schedule(cron="0 0 * * *")
    Schedule.objects.filter(pk=schedule.pk).update(
        next_run_at=datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
    assert schedules_tick().fired == 1
    execution = Execution.objects.get()
    run_job(execution.job.public_id)
    assert executions_follow() == 1
    assert executions_follow() == 0
    execution.refresh_from_db()
    job = execution.job
    assert execution.status == "completed"
    assert execution.duration_ms == int((job.completed_at - job.started_at).total_seconds() * 1000)
    assert execution.finished_at == job.completed_at
    kinds = list(Event.objects.filter(subject=execution.public_id).order_by("id").values_list("kind", flat=True))
    assert kinds == ["execution.fired", "execution.completed"]


@pytest.mark.django_db(transaction=True)
def test_a_failed_job_makes_a_failed_execution(make_schedule):
    schedule = make_schedule(cron="* * * * *", handler="pulse.fail", payload={"retryable": False})
    slot = datetime.now(UTC).replace(second=0, microsecond=0)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=slot)
    schedules_tick(now=slot)  # at the slot: a minute turning meanwhile would make the next one due too
    execution = Execution.objects.get()
    run_job(execution.job.public_id)
    executions_follow()
    execution.refresh_from_db()
    assert execution.status == "failed"
    assert Event.objects.filter(subject=execution.public_id, kind="execution.failed").count() == 1


def test_the_ticker_runs_the_schedule_steps(make_schedule, time_machine):
    from pulse_site.ticker import run_once

    time_machine.move_to("2026-06-01 10:00:30Z", tick=False)  # no minute turns (its slot would be due too)
    schedule = make_schedule(cron="* * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=datetime(2026, 6, 1, 10, 0, tzinfo=UTC))
    assert run_once(["schedules.tick", "schedules.follow"]) == {"schedules.tick": True, "schedules.follow": True}
    assert Execution.objects.filter(schedule=schedule).count() == 1


def test_a_ticker_without_the_handler_leaves_the_slot_to_one_that_has_it(make_schedule, temp_handler, time_machine):
    """A rolling deploy of a new handler: a ticker on a machine still on the release before it
    took the schedule's slot, found no such handler and marked the schedule broken (one
    `schedule.broken`, the team told, and no run until someone edited it), although the tickers
    of the machines already deployed would have fired it. A ticker without the handler now leaves
    its slots to the others; only a slot missed by all of them (none has it: the handler is gone)
    breaks the schedule."""
    @temp_handler("test.new_here")
    def new_here(ctx):
        return None

    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(handler="test.new_here", cron="*/15 * * * *")
    unregister("test.new_here")  # this ticker's machine runs the release before it
    time_machine.move_to(at(10, 15), tick=False)
    assert (schedules_tick().broken, fire_times(schedule)) == (0, [])
    time_machine.move_to(at(10, 15, 30), tick=False)
    assert schedules_tick().broken == 0
    schedule.refresh_from_db()
    assert (schedule.broken_reason, schedule.next_run_at) == ("", at(10, 15))

    @temp_handler("test.new_here")  # a ticker of a deployed machine takes it, the slot still on time
    def deployed(ctx):
        return None

    assert schedules_tick().fired == 1
    assert fire_times(schedule) == [at(10, 15)]
