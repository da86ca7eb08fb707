"""A submit racing a team's retirement either lands before it and is cancelled by it, or is refused:
never a job left queued in a retired team. One PostgreSQL connection per thread."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from jobs.models import Job
from jobs.services import job_submit
from pulse_site.errors import Conflict
from pulse_site.teams.services import team_retire

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite serializes every writer; races need PostgreSQL"),
]
Status = Job.Status
# Long enough for a step that is not blocked to finish on a loaded machine: a wait that times out
# is the proof that the step is blocked.
BLOCKED = 2.0


def submit(team) -> Job:
    return job_submit(team=team, handler="pulse.noop", payload={}, source=Job.Source.API).job


class InThread:
    """`call()` in a thread of its own, with its own connection; its result or error when joined."""

    def __init__(self, call) -> None:
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = call()
            except BaseException as exc:  # noqa: BLE001  (reported to the test)
                self.error = exc
            finally:
                connections.close_all()
                self.done.set()

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def join(self) -> object:
        self.thread.join(timeout=60)
        assert self.done.is_set(), "the thread did not finish"
        return self.result


def test_a_submit_under_way_when_the_retirement_starts_lands_and_is_cancelled(acme):
    submitted, commit = threading.Event(), threading.Event()

    def slow_submit() -> Job:
        with transaction.atomic():  # the submit's transaction, kept open past its check
            job = submit(acme)
            submitted.set()
            assert commit.wait(timeout=30)
        return job

    submitter = InThread(slow_submit)
    assert submitted.wait(timeout=30)
    retirement = InThread(lambda: team_retire(team=acme, who="operator"))
    assert not retirement.done.wait(timeout=BLOCKED)  # it waits for the submit under way
    commit.set()
    job = submitter.join()
    done = retirement.join()
    assert submitter.error is None and retirement.error is None
    assert done.jobs_cancelled == 1  # type: ignore[attr-defined]
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED  # type: ignore[attr-defined]


def test_a_submit_coming_while_the_retirement_is_under_way_is_refused(acme):
    retired, commit = threading.Event(), threading.Event()

    def slow_retirement() -> None:
        with transaction.atomic():  # the retirement's transaction, kept open past its sweep
            team_retire(team=acme, who="operator")
            retired.set()
            assert commit.wait(timeout=30)

    retirement = InThread(slow_retirement)
    assert retired.wait(timeout=30)
    submitter = InThread(lambda: submit(acme))
    assert not submitter.done.wait(timeout=BLOCKED)  # it waits for the retirement to commit
    commit.set()
    retirement.join()
    submitter.join()
    assert retirement.error is None
    assert isinstance(submitter.error, Conflict) and submitter.error.code == "team_retired"
    assert not Job.objects.filter(team=acme).exists()


@pytest.mark.parametrize("round_", range(3))
def test_submits_racing_a_retirement_leave_no_job_queued(round_, acme, globex):
    barrier = threading.Barrier(5)
    landed: list[Job] = []
    refused: list[Conflict] = []

    def submitter() -> None:
        barrier.wait(timeout=30)
        for _ in range(15):
            try:
                landed.append(submit(acme))
            except Conflict as exc:
                refused.append(exc)

    def retirement() -> None:
        barrier.wait(timeout=30)
        team_retire(team=acme, who="operator")

    threads = [InThread(submitter) for _ in range(4)] + [InThread(retirement)]
    for thread in threads:
        thread.join()
    assert [thread.error for thread in threads] == [None] * 5
    assert len(landed) + len(refused) == 60
    assert {exc.code for exc in refused} <= {"team_retired"}
    assert sorted(Job.objects.filter(team=acme).values_list("public_id", flat=True)) == sorted(
        job.public_id for job in landed)
    assert set(Job.objects.filter(team=acme).values_list("status", flat=True)) <= {Status.CANCELLED}
    assert submit(globex).status == Status.QUEUED


def test_a_ticker_firing_a_schedule_while_the_team_is_retired_neither_deadlocks_nor_leaves_its_run(acme):
    from django.utils import timezone

    from schedules.models import Schedule
    from schedules.services import TickResult, schedule_create, schedule_fire_due

    schedule = schedule_create(team=acme, name="Every minute", handler="pulse.noop", cron="* * * * *")
    now = timezone.now()
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=now.replace(second=0, microsecond=0))
    claimed, fire = threading.Event(), threading.Event()

    def ticker() -> None:
        with transaction.atomic():  # as schedules_tick: the schedule claimed, then fired
            locked = Schedule.objects.select_for_update().select_related("team").get(pk=schedule.pk)
            claimed.set()
            assert fire.wait(timeout=30)
            schedule_fire_due(schedule=locked, now=now, result=TickResult())

    tick = InThread(ticker)
    assert claimed.wait(timeout=30)
    retirement = InThread(lambda: team_retire(team=acme, who="operator"))
    assert not retirement.done.wait(timeout=BLOCKED)  # it has the team's lock, and waits for the schedule
    fire.set()
    tick.join()
    done = retirement.join()
    assert tick.error is None and retirement.error is None
    assert (done.schedules_paused, done.jobs_cancelled) == (1, 1)  # type: ignore[attr-defined]
    assert list(Job.objects.filter(team=acme).values_list("source", "status")) == [
        (Job.Source.SCHEDULE, Status.CANCELLED)]
    assert not Schedule.objects.get(pk=schedule.pk).enabled


def test_a_submit_takes_the_retirement_lock_and_reads_the_flag_in_one_statement(acme):
    """The check is on every job's way to its start: one round trip, the flag read once the lock
    is held (the function's own snapshot), not a lock statement and a read."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        submit(acme)
    touching = [q["sql"] for q in queries.captured_queries
                if "advisory_xact_lock_shared" in q["sql"] or "retired" in q["sql"] or '"teams_team"' in q["sql"]]
    assert len(touching) == 1, touching
