"""Schedule services: validation through code names every field; pause, resume, edit, delete."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs.models import Job
from pulse_site.errors import ValidationError
from pulse_site.live.models import Event
from schedules.models import Execution, Schedule
from schedules.services import (
    schedule_delete,
    schedule_pause,
    schedule_resume,
    schedule_trigger,
    schedule_update,
)

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 10, 0, 0, tzinfo=UTC)


def test_a_schedule_starts_at_its_first_slot_in_the_teams_zone(acme, make_schedule, time_machine):
    time_machine.move_to(T0, tick=False)
    acme.time_zone = "Europe/Berlin"
    acme.save()
    schedule = make_schedule(cron="0 9 * * *", time_zone=None)
    assert schedule.time_zone == "Europe/Berlin"
    assert schedule.public_id.startswith("SP_")
    assert schedule.next_run_at == datetime(2026, 6, 2, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert Event.objects.filter(subject=schedule.public_id).values_list("kind", flat=True).get() == "schedule.changed"


def test_every_bad_field_is_refused_at_once_and_nothing_is_written(acme, make_schedule):
    with pytest.raises(ValidationError) as caught:
        make_schedule(name=" ", cron="0 0 30 2 *", time_zone="Nowhere/City", overlap_policy="wait",
                      misfire_policy="never", estimate_override="-1", handler="pulse.sleep", payload={"steps": 0})
    assert caught.value.fields == {
        "name": ["A name is required."],
        "cron": ["This expression never fires (not once in the next 5 years)."],
        "time_zone": ["'Nowhere/City' is not an IANA time zone name (e.g. Europe/Berlin)."],
        "overlap_policy": ["Choose one of skip, queue, allow."],
        "misfire_policy": ["Choose one of skip, once, all."],
        "estimate_override": ["The amount cannot be negative."],
        "payload.steps": ["0 is less than the minimum of 1"],
    }
    assert Schedule.objects.count() == 0
    assert Event.objects.filter(kind__startswith="schedule.").count() == 0


def test_an_unknown_handler_is_refused_on_the_handler_field(make_schedule):
    with pytest.raises(ValidationError) as caught:
        make_schedule(handler="no.such")
    assert caught.value.fields == {"handler": ["Unknown handler 'no.such'."]}


def test_an_estimator_that_fails_is_refused_on_the_payload_field(make_schedule, temp_handler):
    @temp_handler("test.costly", cost=lambda payload: 1 / 0)
    def costly(ctx):
        return None

    with pytest.raises(ValidationError) as caught:
        make_schedule(handler="test.costly")
    assert caught.value.fields == {"payload": ["The cost estimator of test.costly failed: ZeroDivisionError: division by zero"]}
    assert make_schedule(handler="test.costly", estimate_override="0.25").estimate_override == 250_000


def test_an_edit_is_validated_like_a_creation_and_refusals_change_nothing(make_schedule):
    schedule = make_schedule()
    with pytest.raises(ValidationError) as caught:
        schedule_update(schedule=schedule, changes={"cron": "* * * * * *", "payload": {"x": 1}, "handler": "pulse.sleep"})
    assert set(caught.value.fields) == {"cron", "payload.x"}  # the unexpected key itself
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.handler) == ("*/15 * * * *", "pulse.noop")
    with pytest.raises(ValidationError) as caught:
        schedule_update(schedule=schedule, changes={"team": 1})
    assert caught.value.fields == {"team": ["This field cannot be changed."]}


def test_an_edit_keeping_the_estimate_override_keeps_its_amount(make_schedule):
    schedule = make_schedule(estimate_override="1.5")
    schedule = schedule_update(schedule=schedule, changes={"name": "Renamed"})
    assert (schedule.name, schedule.estimate_override) == ("Renamed", 1_500_000)


def test_resume_does_not_fire_the_runs_missed_while_paused(make_schedule, time_machine):
    time_machine.move_to(T0, tick=False)
    schedule = make_schedule(cron="*/15 * * * *")
    schedule = schedule_pause(schedule=schedule, by="alice")
    assert (schedule.enabled, schedule.next_run_at) == (False, None)
    time_machine.move_to(datetime(2026, 6, 1, 13, 7, tzinfo=UTC), tick=False)
    schedule = schedule_resume(schedule=schedule, by="alice")
    assert (schedule.enabled, schedule.next_run_at) == (True, datetime(2026, 6, 1, 13, 15, tzinfo=UTC))
    assert Execution.objects.count() == 0


def test_run_now_makes_a_manual_execution_and_a_job_with_the_schedules_payload(make_schedule):
    schedule = make_schedule(handler="pulse.sleep", payload={"steps": 2, "seconds": 0}, estimate_override="0.5")
    execution = schedule_trigger(schedule=schedule, by="alice")
    job = Job.objects.get()
    assert execution.trigger == Execution.Trigger.MANUAL
    assert execution.job == job
    assert execution.status == "queued"
    assert (job.handler, job.payload, job.source, job.cost_estimate, job.created_by) == (
        "pulse.sleep", {"steps": 2, "seconds": 0}, "schedule", 500_000, "alice")
    assert job.origin == schedule.public_id  # what the jobs list's schedule filter reads
    schedule.refresh_from_db()
    assert schedule.last_run_at == execution.fire_time
    assert Event.objects.filter(subject=execution.public_id).values_list("kind", flat=True).get() == "execution.fired"


def test_deleting_a_schedule_keeps_the_jobs_it_created(make_schedule):
    schedule = make_schedule()
    schedule_trigger(schedule=schedule)
    schedule_delete(schedule=schedule, by="alice")
    assert (Schedule.objects.count(), Execution.objects.count(), Job.objects.count()) == (0, 0, 1)
    assert Event.objects.filter(kind="schedule.deleted", subject=schedule.public_id).count() == 1


def test_an_estimators_own_refusal_or_junk_answer_reads_as_it_does_on_a_submit(make_schedule, temp_handler):
    """The schedule wrapped a refusal that already said what was wrong in a second sentence
    ("The handler's cost estimate failed: payload.pages: …") and lost the field it named."""
    def refuse(payload):
        raise ValidationError.for_field("payload.pages", "At most 10 pages a run.")

    temp_handler("test.refusing", cost=refuse)(lambda ctx: None)
    temp_handler("test.floaty", cost=lambda payload: 0.5)(lambda ctx: None)
    with pytest.raises(ValidationError) as caught:
        make_schedule(handler="test.refusing")
    assert caught.value.fields == {"payload.pages": ["At most 10 pages a run."]}
    with pytest.raises(ValidationError) as caught:
        make_schedule(handler="test.floaty")
    assert caught.value.fields == {"payload": [
        "The cost estimator of test.floaty answered 0.5, not an amount: "
        "Give the amount as a string (e.g. \"0.10\"), not a float."]}
