"""Runs staged before their slot: written as jobs that wait for the slot, withdrawn when the
schedule changes first, decided at the slot when the skip policy could still change its answer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count

from jobs.dispatch import _ready
from jobs.models import Job
from schedules.models import Execution, Schedule
from schedules.selectors import schedule_next_runs
from schedules.services import (
    TickResult,
    schedule_delete,
    schedule_pause,
    schedule_trigger,
    schedule_update,
    schedules_tick,
)

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 10, 0, 0, tzinfo=UTC)
SLOT = datetime(2026, 6, 1, 10, 1, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def stage_a_minute_ahead(fire_at_the_slot, settings):
    settings.PULSE_SCHEDULE_STAGE_SECONDS = 60


@pytest.fixture
def staged(make_schedule, time_machine):
    """An every-minute schedule whose 10:01 run was staged at 10:00:30."""
    def _staged(**values) -> Schedule:
        time_machine.move_to(T0, tick=False)
        values.setdefault("cron", "* * * * *")
        schedule = make_schedule(**values)
        time_machine.move_to(T0 + timedelta(seconds=30), tick=False)
        assert schedules_tick().staged == 1
        schedule.refresh_from_db()
        return schedule

    return _staged


def _slot_runs(schedule: Schedule) -> list[Execution]:
    return list(Execution.objects.filter(schedule=schedule, fire_time=SLOT).select_related("job"))


def test_a_run_is_staged_before_its_slot_as_a_job_that_waits_for_it(staged, time_machine):
    schedule = staged()
    [execution] = _slot_runs(schedule)
    job = execution.job
    assert (job.status, job.run_after, job.dispatched_at) == ("queued", SLOT, None)
    assert job.created_at == T0 + timedelta(seconds=30)
    assert (schedule.next_run_at, schedule.last_run_at) == (SLOT + timedelta(minutes=1), SLOT)
    assert not _ready(T0 + timedelta(seconds=59)).filter(pk=job.pk).exists()

    time_machine.move_to(SLOT, tick=False)
    result = schedules_tick()
    assert (result.fired, result.staged) == (0, 0)
    assert _ready(SLOT).filter(pk=job.pk).exists()
    assert Execution.objects.count() == 1


def test_nothing_is_staged_further_ahead_than_the_lead(make_schedule, time_machine, settings):
    settings.PULSE_SCHEDULE_STAGE_SECONDS = 20
    time_machine.move_to(T0, tick=False)
    make_schedule(cron="* * * * *")
    time_machine.move_to(T0 + timedelta(seconds=30), tick=False)
    assert schedules_tick().staged == 0
    time_machine.move_to(T0 + timedelta(seconds=40), tick=False)
    assert schedules_tick().staged == 1
    assert Job.objects.get().run_after == SLOT


def test_a_tick_stages_for_a_bounded_time_and_the_next_tick_goes_on(make_schedule, time_machine, monkeypatch):
    from schedules import services

    monkeypatch.setattr(services, "STAGE_PASS_SECONDS", -1.0)  # every pass ends after one batch
    time_machine.move_to(T0, tick=False)
    for n in range(5):
        make_schedule(name=f"S{n}", cron="* * * * *")
    time_machine.move_to(T0 + timedelta(seconds=30), tick=False)
    assert [schedules_tick(batch=2).staged for _ in range(4)] == [2, 2, 1, 0]
    assert Execution.objects.filter(fire_time=SLOT).count() == 5


def test_with_staging_off_the_run_is_fired_at_the_slot(make_schedule, time_machine, settings):
    settings.PULSE_SCHEDULE_STAGE_SECONDS = 0
    time_machine.move_to(T0, tick=False)
    make_schedule(cron="* * * * *")
    time_machine.move_to(T0 + timedelta(seconds=59), tick=False)
    assert schedules_tick().staged == 0
    time_machine.move_to(SLOT, tick=False)
    assert schedules_tick().fired == 1
    assert Job.objects.get().run_after is None


def test_an_edit_of_the_payload_withdraws_the_staged_run_and_the_new_payload_is_staged(staged, time_machine):
    schedule = staged(handler="pulse.sleep", payload={"seconds": 1})
    [old] = _slot_runs(schedule)
    time_machine.move_to(T0 + timedelta(seconds=40), tick=False)
    schedule = schedule_update(schedule=schedule, changes={"payload": {"seconds": 2}}, by="alice")
    old.job.refresh_from_db()
    assert old.job.status == "cancelled"
    assert _slot_runs(schedule) == []
    assert schedule.next_run_at == SLOT

    assert schedules_tick().staged == 1
    [new] = _slot_runs(schedule)
    assert (new.job.payload, new.job.run_after, new.job.status) == ({"seconds": 2, "steps": 5}, SLOT, "queued")  # the handler's default filled in
    time_machine.move_to(SLOT, tick=False)
    assert schedules_tick().fired == 0
    assert Execution.objects.filter(schedule=schedule, fire_time=SLOT).count() == 1


def test_the_next_runs_of_a_staged_schedule_still_begin_with_the_staged_slot(staged):
    schedule = staged()
    assert schedule_next_runs(schedule, count=3) == [SLOT + timedelta(minutes=m) for m in range(3)]


def test_the_list_row_shows_a_staged_run_as_the_next_run_until_its_slot(staged, alice_client, time_machine):
    """Staged a minute ahead, an every-minute schedule's next run would always read a slot late
    and its last run would be one still to come."""
    schedule = staged(name="Minutely")
    time_machine.move_to(T0 + timedelta(seconds=40), tick=False)

    def row() -> tuple[str, str]:
        body = alice_client.get(f"/schedules/{schedule.public_id}/row/").content.decode()
        next_cell = body.split('data-field="next">')[1].split("</td>")[0]
        last_cell = body.split('data-field="last">')[1].split("</td>")[0]
        return next_cell, last_cell

    next_cell, last_cell = row()
    assert f'datetime="{SLOT.isoformat()}"' in next_cell and "never" in last_cell

    time_machine.move_to(SLOT + timedelta(seconds=1), tick=False)  # the slot came: the run is the last
    next_cell, last_cell = row()
    assert f'datetime="{(SLOT + timedelta(minutes=1)).isoformat()}"' in next_cell
    assert f'datetime="{SLOT.isoformat()}"' in last_cell


def test_a_withdrawn_run_gives_the_last_run_back(staged, time_machine):
    schedule = staged(handler="pulse.sleep", payload={"seconds": 1}, overlap_policy="allow")
    time_machine.move_to(SLOT + timedelta(seconds=30), tick=False)
    assert schedules_tick().staged == 1  # 10:02
    schedule.refresh_from_db()
    assert schedule.last_run_at == SLOT + timedelta(minutes=1)
    schedule = schedule_update(schedule=schedule, changes={"payload": {"seconds": 2}})
    assert (schedule.last_run_at, schedule.next_run_at) == (SLOT, SLOT + timedelta(minutes=1))
    schedule.refresh_from_db()
    assert schedule.last_run_at == SLOT
    assert schedule_next_runs(schedule, count=2) == [SLOT + timedelta(minutes=1), SLOT + timedelta(minutes=2)]


def test_an_edit_of_the_name_keeps_the_staged_run(staged):
    schedule = staged()
    [execution] = _slot_runs(schedule)
    schedule_update(schedule=schedule, changes={"name": "Renamed"})
    assert _slot_runs(schedule) == [execution]
    execution.job.refresh_from_db()
    assert execution.job.status == "queued"


def test_pausing_before_the_slot_withdraws_the_staged_run(staged, time_machine):
    schedule = staged()
    [execution] = _slot_runs(schedule)
    schedule_pause(schedule=schedule, by="alice")
    execution.job.refresh_from_db()
    assert execution.job.status == "cancelled"
    assert Execution.objects.count() == 0
    time_machine.move_to(SLOT, tick=False)
    result = schedules_tick()
    assert (result.fired, result.staged) == (0, 0)
    assert Job.objects.filter(status="queued").count() == 0


def test_deleting_before_the_slot_cancels_the_staged_run(staged):
    schedule = staged()
    [execution] = _slot_runs(schedule)
    schedule_delete(schedule=schedule, by="alice")
    job = Job.objects.get(pk=execution.job_id)
    assert job.status == "cancelled"
    assert not Schedule.objects.filter(pk=schedule.pk).exists()


def test_a_run_whose_slot_has_passed_is_not_withdrawn_by_an_edit(staged, time_machine):
    schedule = staged(handler="pulse.sleep", payload={"seconds": 1})
    [execution] = _slot_runs(schedule)
    time_machine.move_to(SLOT + timedelta(seconds=1), tick=False)
    schedule_update(schedule=schedule, changes={"payload": {"seconds": 2}})
    execution.job.refresh_from_db()
    assert execution.job.status == "queued"
    assert _slot_runs(schedule) == [execution]


def test_skip_policy_waits_for_the_slot_while_the_last_run_is_unfinished(staged, time_machine):
    schedule = staged(overlap_policy="skip")
    Job.objects.update(status=Job.Status.RUNNING)
    # 10:01 was staged; 10:02 cannot be while the 10:01 run is unfinished: decided at 10:02.
    time_machine.move_to(SLOT + timedelta(seconds=30), tick=False)
    assert schedules_tick().staged == 0
    time_machine.move_to(SLOT + timedelta(minutes=1), tick=False)
    result = schedules_tick()
    assert (result.fired, result.skipped) == (0, 1)
    schedule.refresh_from_db()
    assert schedule.next_run_at == SLOT + timedelta(minutes=2)


def test_skip_policy_stages_once_the_last_run_has_finished(staged, time_machine):
    staged(overlap_policy="skip")
    Job.objects.update(status=Job.Status.RUNNING)
    time_machine.move_to(SLOT + timedelta(seconds=20), tick=False)
    assert schedules_tick().staged == 0
    Job.objects.update(status=Job.Status.COMPLETED)
    time_machine.move_to(SLOT + timedelta(seconds=21), tick=False)
    assert schedules_tick().staged == 1
    assert Job.objects.filter(status="queued").get().run_after == SLOT + timedelta(minutes=1)


def test_a_manual_run_withdraws_a_staged_skip_run_and_the_slot_is_decided_at_the_slot(staged, time_machine):
    schedule = staged(overlap_policy="skip")
    [cron_run] = _slot_runs(schedule)
    time_machine.move_to(T0 + timedelta(seconds=45), tick=False)
    manual = schedule_trigger(schedule=schedule, by="alice")
    cron_run.job.refresh_from_db()
    assert cron_run.job.status == "cancelled"
    schedule.refresh_from_db()
    assert schedule.next_run_at == SLOT
    assert schedules_tick().staged == 0  # the manual run is unfinished
    time_machine.move_to(SLOT, tick=False)
    assert schedules_tick().skipped == 1
    [at_slot] = _slot_runs(schedule)
    assert (at_slot.outcome, at_slot.job) == ("skipped", None)
    assert manual.job.status == "queued"


def test_a_manual_run_keeps_a_staged_allow_run(staged, time_machine):
    schedule = staged(overlap_policy="allow")
    [cron_run] = _slot_runs(schedule)
    schedule_trigger(schedule=schedule, by="alice")
    assert _slot_runs(schedule) == [cron_run]


def test_a_missed_run_is_caught_up_as_before_and_the_next_one_staged(make_schedule, time_machine):
    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(cron="* * * * *", misfire_policy="once", overlap_policy="allow")
    time_machine.move_to(datetime(2026, 6, 1, 10, 5, 30, tzinfo=UTC), tick=False)  # 10:01 … 10:05 missed
    result = schedules_tick()
    assert (result.fired, result.staged) == (1, 1)
    fired = Execution.objects.filter(schedule=schedule).order_by("fire_time")
    assert [(e.fire_time.minute, e.job.run_after) for e in fired] == [
        (5, None), (6, datetime(2026, 6, 1, 10, 6, tzinfo=UTC))]


@pytest.mark.django_db(transaction=True)
def test_three_tickers_stage_each_of_300_schedules_once(acme, globex, settings):
    if not settings.IS_POSTGRES:
        pytest.skip("row claims between threads need PostgreSQL; SQLite serializes writers anyway")
    schedules = 300
    slot = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    Schedule.objects.bulk_create(
        Schedule(team=acme if i % 2 else globex, name=f"S{i:03}", handler="pulse.noop", cron="* * * * *",
                 time_zone="UTC", overlap_policy="skip" if i % 3 else "allow", next_run_at=slot)
        for i in range(schedules)
    )
    barrier = threading.Barrier(3)
    results: list[TickResult] = []
    errors: list[BaseException] = []

    def ticker() -> None:
        try:
            barrier.wait()
            results.append(schedules_tick(now=slot - timedelta(seconds=30), batch=50))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ticker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sum(r.staged for r in results) == schedules
    per_schedule = Execution.objects.filter(fire_time=slot).values("schedule").annotate(n=Count("id"))
    assert sorted({row["n"] for row in per_schedule}) == [1]
    assert per_schedule.count() == schedules
    assert set(Job.objects.values_list("run_after", flat=True)) == {slot}
    assert set(Schedule.objects.values_list("next_run_at", flat=True)) == {slot + timedelta(minutes=1)}
    # At the slot nothing more is fired for it; the next slot is staged only where the skip policy
    # does not wait for this run to finish.
    result = schedules_tick(now=slot)
    assert (result.fired, result.staged) == (0, schedules // 3)
    assert Execution.objects.filter(fire_time=slot).count() == schedules


@pytest.fixture
def tick_step(monkeypatch, time_machine):
    """The ticker's schedules step with this test's clock: its sleep moves the clock instead."""
    from types import SimpleNamespace

    from schedules import steps

    monkeypatch.setattr(steps, "_staged_slots", set())
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time_machine.shift(timedelta(seconds=seconds))

    monkeypatch.setattr(steps, "time", SimpleNamespace(sleep=sleep))
    return SimpleNamespace(tick=steps.tick, slept=slept)


def test_the_tick_step_wakes_at_a_staged_slot_and_hands_its_runs_over(make_schedule, time_machine, tick_step):
    time_machine.move_to(T0, tick=False)
    make_schedule(cron="* * * * *")
    time_machine.move_to(SLOT - timedelta(seconds=30), tick=False)
    tick_step.tick()
    job = Job.objects.get()
    assert (job.run_after, job.dispatched_at, tick_step.slept) == (SLOT, None, [])
    time_machine.move_to(SLOT - timedelta(seconds=0.4), tick=False)
    tick_step.tick()
    assert tick_step.slept == [pytest.approx(0.4)]
    job.refresh_from_db()
    assert job.dispatched_at == SLOT


def test_the_tick_step_hands_over_a_staged_slot_it_finds_passed(make_schedule, time_machine, tick_step):
    time_machine.move_to(T0, tick=False)
    make_schedule(cron="* * * * *")
    time_machine.move_to(SLOT - timedelta(seconds=30), tick=False)
    tick_step.tick()
    time_machine.move_to(SLOT + timedelta(seconds=2), tick=False)  # the round was late
    tick_step.tick()
    job = Job.objects.get()
    assert job.dispatched_at == SLOT + timedelta(seconds=2)


def _failed_manual_run(make_schedule, time_machine, **values) -> tuple[Schedule, Execution]:
    """A schedule whose manual run failed at 10:00, then its 10:01 run staged at 10:00:30."""
    from schedules.services import executions_follow

    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(cron="* * * * *", **values)
    manual = schedule_trigger(schedule=schedule, by="alice")
    Job.objects.filter(pk=manual.job.pk).update(status=Job.Status.FAILED, completed_at=T0)
    executions_follow()
    time_machine.move_to(T0 + timedelta(seconds=30), tick=False)
    assert schedules_tick().staged == 1
    schedule.refresh_from_db()
    return schedule, Execution.objects.select_related("job").get(pk=manual.pk)


def test_retrying_a_finished_run_withdraws_a_staged_skip_run_and_the_slot_is_decided_at_the_slot(
        make_schedule, time_machine):
    """The staged 10:01 run was written while nothing was unfinished; the 10:00 run retried at
    10:00:45 is unfinished again, and the staged run went ahead at 10:01 beside it (skip broken)."""
    from jobs.services import job_retry

    schedule, manual = _failed_manual_run(make_schedule, time_machine, overlap_policy="skip")
    [cron_run] = _slot_runs(schedule)
    time_machine.move_to(T0 + timedelta(seconds=45), tick=False)
    job_retry(job=manual.job, by="alice")
    cron_run.job.refresh_from_db()
    assert cron_run.job.status == "cancelled"
    schedule.refresh_from_db()
    assert schedule.next_run_at == SLOT
    manual.refresh_from_db()
    assert (manual.status, manual.finished_at, manual.ended) == ("queued", None, "")  # its new end is recorded
    time_machine.move_to(SLOT, tick=False)
    assert schedules_tick().skipped == 1
    [at_slot] = _slot_runs(schedule)
    assert (at_slot.outcome, at_slot.job) == ("skipped", None)


def test_retrying_a_finished_run_keeps_a_staged_allow_run(make_schedule, time_machine):
    from jobs.services import job_retry

    schedule, manual = _failed_manual_run(make_schedule, time_machine, overlap_policy="allow")
    [cron_run] = _slot_runs(schedule)
    job_retry(job=manual.job, by="alice")
    assert _slot_runs(schedule) == [cron_run] and Job.objects.get(pk=cron_run.job.pk).status == "queued"


# --- A staged run whose slot passed while no ticker ran ----------------------------------------

BACK = datetime(2026, 6, 1, 10, 5, 30, tzinfo=UTC)  # the ticker is back: 10:01 … 10:04 were missed


def _runs_ready(now: datetime) -> list[int]:
    """The minutes of the slots whose runs the dispatcher would hand over at `now`."""
    slots = dict(Execution.objects.values_list("job_id", "fire_time"))
    return sorted(slots[pk].minute for pk in _ready(now).values_list("pk", flat=True))


def test_a_staged_run_not_handed_over_by_the_end_of_its_grace_is_not_handed_over_late(staged, time_machine):
    """The jobs' dispatch runs before the schedules' tick in a round: back after downtime, it
    handed over the 10:01 run four minutes late, beside the 10:05 run the misfire policy fires."""
    staged(misfire_policy="once", overlap_policy="allow")
    assert _runs_ready(SLOT + timedelta(seconds=59)) == [1]
    assert _runs_ready(BACK) == []


@pytest.mark.parametrize(("misfire", "overlap", "runs", "skipped"), [
    ("once", "allow", [5], []),
    ("once", "skip", [5], []),  # not skipped because the missed 10:01 run is "still queued"
    # The skip policy runs none of the missed slots and says so in a skipped run of the last one.
    ("skip", "allow", [5], [4]),
    ("skip", "skip", [5], [4]),
    ("all", "allow", [1, 2, 3, 4, 5], []),
])
def test_a_staged_run_whose_slot_was_missed_is_decided_by_the_misfire_policy(staged, time_machine, misfire,
                                                                             overlap, runs, skipped):
    schedule = staged(misfire_policy=misfire, overlap_policy=overlap)
    [missed] = _slot_runs(schedule)
    time_machine.move_to(BACK, tick=False)
    result = schedules_tick()
    assert _runs_ready(BACK) == runs
    assert (result.fired, result.skipped) == (len(runs), len(skipped))
    missed.job.refresh_from_db()
    assert missed.job.status == "cancelled"
    fired = Execution.objects.filter(schedule=schedule, fire_time__lte=BACK).order_by("fire_time")
    assert [e.fire_time.minute for e in fired if e.job_id] == runs
    assert [e.fire_time.minute for e in fired if e.outcome == "skipped"] == skipped
    assert fired[0].reason.startswith("No ticker ran at its slots from 2026-06-01 10:01 UTC to 10:04 UTC: ")
    assert schedule_next_runs(Schedule.objects.get(pk=schedule.pk), count=1) == [datetime(2026, 6, 1, 10, 6, tzinfo=UTC)]


def test_a_staged_run_handed_over_at_its_slot_still_runs_when_handed_over_again_later(staged, time_machine):
    """Handed over on time, then back in the backlog (a lost broker message): it is its slot's run."""
    from jobs.dispatch import dispatch, redispatch_stale

    schedule = staged(misfire_policy="once", overlap_policy="allow")
    time_machine.move_to(SLOT, tick=False)
    assert dispatch() == 1
    time_machine.move_to(BACK, tick=False)
    assert redispatch_stale() == 1
    assert _runs_ready(BACK) == [1]
    schedules_tick()
    assert _runs_ready(BACK) == [1, 5]
    assert Job.objects.get(pk=_slot_runs(schedule)[0].job_id).status == "queued"


@pytest.mark.parametrize("action", ["pause", "delete"])
def test_a_staged_run_never_handed_over_is_cancelled_by_a_pause_or_delete_after_its_slot(staged, time_machine,
                                                                                         action):
    schedule = staged(overlap_policy="allow")
    [missed] = _slot_runs(schedule)
    time_machine.move_to(SLOT + timedelta(seconds=30), tick=False)  # the ticker is down since 10:00:30
    (schedule_pause if action == "pause" else schedule_delete)(schedule=schedule, by="alice")
    missed.job.refresh_from_db()
    assert missed.job.status == "cancelled"
    time_machine.move_to(BACK, tick=False)
    schedules_tick()
    assert _ready(BACK).count() == 0


def test_a_staged_run_held_before_its_slot_and_resumed_after_it_runs(staged, time_machine):
    """The person who resumes it wants it run: it is no missed slot for the misfire policy."""
    from jobs.services import job_pause, job_resume

    schedule = staged(overlap_policy="allow")
    [run] = _slot_runs(schedule)
    job_pause(job=run.job, by="alice")
    time_machine.move_to(BACK, tick=False)
    job_resume(job=run.job, by="alice")
    schedules_tick()
    assert 1 in _runs_ready(BACK)
    assert Job.objects.get(pk=run.job_id).status == "queued"


def test_a_run_cancelled_as_missed_runs_when_retried(staged, time_machine):
    from jobs.services import job_retry

    schedule = staged(misfire_policy="skip", overlap_policy="allow")
    [missed] = _slot_runs(schedule)
    time_machine.move_to(BACK, tick=False)
    schedules_tick()
    job_retry(job=Job.objects.get(pk=missed.job_id), by="alice")
    assert missed.job_id in set(_ready(BACK).values_list("pk", flat=True))


def test_a_missed_staged_run_whose_schedule_is_gone_is_cancelled(staged, time_machine):
    """Deleted past the services (a cascade): no schedule is left to decide it, nor is it handed over."""
    schedule = staged(overlap_policy="allow")
    [run] = _slot_runs(schedule)
    Schedule.objects.filter(pk=schedule.pk).delete()
    time_machine.move_to(BACK, tick=False)
    schedules_tick()
    assert Job.objects.get(pk=run.job_id).status == "cancelled"


def test_a_staged_run_a_person_cancelled_is_no_longer_the_next_run(staged, alice_client, time_machine):
    """Cancelled from its job's page, the 10:01 run still read as the schedule's next run (list,
    page and API) until 10:01, which then came and went without a run."""
    from jobs.services import job_cancel

    schedule = staged(name="Minutely", overlap_policy="allow")
    [run] = _slot_runs(schedule)
    time_machine.move_to(T0 + timedelta(seconds=40), tick=False)
    job_cancel(job=run.job, by="alice")
    schedule.refresh_from_db()
    following = SLOT + timedelta(minutes=1)
    assert schedule_next_runs(schedule, count=2) == [following, following + timedelta(minutes=1)]
    body = alice_client.get(f"/api/v1/schedules/{schedule.public_id}/").json()
    assert (body["next_runs"][0], body["last_run_at"]) == (following.isoformat(), None)
    row = alice_client.get(f"/schedules/{schedule.public_id}/row/").content.decode()
    assert f'datetime="{following.isoformat()}"' in row.split('data-field="next">')[1].split("</td>")[0]
    assert _slot_runs(schedule) == [run]  # its history keeps the cancelled run


@pytest.mark.parametrize("misfire", ["skip", "once"])
def test_a_staged_run_its_ticker_saw_come_waits_in_a_busy_backlog_as_long_as_it_takes(
        staged, time_machine, settings, acme, misfire):
    """Workers busy at the slot (no room to hand the run over) is not a missed slot: the ticker
    was there. The run waited its turn before staging and must still: it was cancelled as missed
    after 60 s, and under misfire "skip" that slot never ran."""
    from jobs.dispatch import dispatch
    from jobs.services import job_submit

    settings.PULSE_DISPATCH_CAPACITY = 1
    schedule = staged(misfire_policy=misfire, overlap_policy="allow")
    busy = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    Job.objects.filter(pk=busy.pk).update(status=Job.Status.RUNNING)  # the only room, taken
    for seconds in (0, 1, 30, 61, 90, 150):
        time_machine.move_to(SLOT + timedelta(seconds=seconds), tick=False)
        schedules_tick()
        dispatch()
    [run] = _slot_runs(schedule)
    assert (run.job.status, run.job.dispatched_at) == ("queued", None)
    assert _runs_ready(SLOT + timedelta(seconds=150)) == [1, 2, 3]  # its turn comes, as do the next slots'
    Job.objects.filter(pk=busy.pk).update(status=Job.Status.COMPLETED)
    assert dispatch() == 1
    run.job.refresh_from_db()
    assert run.job.dispatched_at == SLOT + timedelta(seconds=150)


@pytest.mark.django_db(transaction=True)
def test_a_missed_staged_run_a_worker_starts_while_the_tick_decides_it_stays_its_slots_run(staged, time_machine):
    """A worker's claim commits between the tick's read of the missed runs and its cancel (the
    dispatch had handed the run over just before its start_by): the tick cancelled a running job
    (cancel requested) and let the misfire policy fire the slot again, two runs of one slot. The
    runs are locked and checked again first: one that has started is left to run."""
    import time as clock

    from django.db import connections, transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    schedule = staged(misfire_policy="once", overlap_policy="allow")
    [run] = _slot_runs(schedule)
    time_machine.move_to(BACK, tick=False)
    done: list[object] = []

    def tick() -> None:
        try:
            done.append(schedules_tick())
        except Exception as exc:  # recorded for the assertion below
            done.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():  # the worker's claim, not committed yet
        Job.objects.filter(pk=run.job_id).update(status=Job.Status.RUNNING, attempts=1, dispatched_at=SLOT,
                                                 started_at=BACK)
        ticker = threading.Thread(target=tick)
        ticker.start()
        deadline = clock.monotonic() + 30
        while not ticker.is_alive() or not _lock_waiters():
            assert ticker.is_alive() and clock.monotonic() < deadline, f"the tick did not wait for the job: {done}"
            clock.sleep(0.02)
    ticker.join(timeout=30)
    assert len(done) == 1 and not isinstance(done[0], Exception), done
    job = Job.objects.get(pk=run.job_id)
    assert (job.status, job.cancel_requested) == ("running", False)
    assert [e.pk for e in _slot_runs(schedule)] == [run.pk]
    # 10:01 ran on its staged job; the misfire policy (once) caught up 10:02 to 10:05 at 10:05.
    fired = Execution.objects.filter(schedule=schedule, fire_time__lte=BACK).order_by("fire_time")
    assert [e.fire_time.minute for e in fired] == [1, 5]


def _lock_waiters() -> int:
    """How many other connections to this database wait for a lock now (read afresh: within a
    transaction, PostgreSQL answers from the statistics snapshot of its first read)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0]




def test_a_failing_staged_run_step_is_logged_and_the_schedules_still_fire(make_schedule, time_machine, monkeypatch,
                                                                         caplog):
    """The steps about staged runs ran before the tick's own error handling: one that failed each
    time (a bug, a row it could not write) stopped every schedule from firing."""
    from schedules import services

    def broken(now):
        Job.objects.filter(pk__gt=0).update(start_by=now)  # written, then undone with its savepoint
        raise RuntimeError("a bug in the withdrawal")

    from jobs.services import job_submit

    monkeypatch.setattr(services, "_withdraw_missed", broken)
    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(cron="* * * * *")
    other = job_submit(team=schedule.team, handler="pulse.noop", payload={}, source="api").job
    time_machine.move_to(SLOT + timedelta(seconds=1), tick=False)
    result = schedules_tick()
    assert result.fired == 1
    assert [e.fire_time for e in Execution.objects.filter(schedule=schedule)] == [SLOT]
    assert Job.objects.get(pk=other.pk).start_by is None
    assert "the schedules tick's broken failed" in caplog.text
