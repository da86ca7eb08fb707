"""pulse_site.sqlbatch writes and reads the rows the ORM would: each value through its field, so
JSON, dates and foreign keys come out as the ORM's own, on PostgreSQL (one statement) and SQLite."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import Job
from pulse_site import sqlbatch
from pulse_site.live.models import Event

pytestmark = pytest.mark.django_db


def test_a_batch_inserts_and_updates_the_rows_the_orm_would(acme):
    job = Job(team=acme, handler="pulse.noop", payload={"nested": {"list": [1, "two", None]}, "ünïcode": "✓"},
              source=Job.Source.API, run_after=timezone.now(), hold_reasons=[{"kind": "manual"}])
    events = [Event(team_id=acme.pk, kind="job.created", subject=job.public_id, payload={"n": n}) for n in (1, 2)]
    batch = sqlbatch.WriteBatch()
    batch.insert([job])
    batch.insert(events)
    with CaptureQueriesContext(connection) as queries:
        assert batch.flush() == [1, 2]
    if connection.vendor == "postgresql":
        assert len(queries.captured_queries) == 1
    assert job.pk is not None and not job._state.adding
    assert model_to_dict(Job.objects.get(pk=job.pk)) == model_to_dict(job)
    assert [(e.pk, e.payload) for e in Event.objects.filter(subject=job.public_id).order_by("pk")] == [
        (events[0].pk, {"n": 1}), (events[1].pk, {"n": 2})]

    batch.update(Job, [job.pk], where={"status": Job.Status.QUEUED}, values={"progress_message": "half"},
                 add={"priority": 5})
    batch.update(Job, [job.pk], where={"status": Job.Status.RUNNING}, values={"progress_message": "never"})
    assert batch.flush() == [1, 0]
    job.refresh_from_db()
    assert (job.progress_message, job.priority) == ("half", 5)


def test_a_failing_batch_writes_nothing(acme):
    job = Job(team=acme, handler="pulse.noop", payload={}, source=Job.Source.API)
    job.save()
    twin = Job(team=acme, handler="pulse.noop", payload={}, source=Job.Source.API, public_id=job.public_id)
    batch = sqlbatch.WriteBatch()
    batch.insert([Event(team_id=acme.pk, kind="job.created", subject="JB_X", payload={})])
    batch.insert([twin])  # the unique public id
    with pytest.raises(Exception), transaction.atomic():
        batch.flush()
    assert not Event.objects.filter(subject="JB_X").exists()


def test_a_row_read_by_hand_is_the_orms_instance(acme):
    job = Job.objects.create(team=acme, handler="pulse.noop", payload={"a": [1]}, source=Job.Source.API,
                             error_details={"why": "x"}, started_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sqlbatch.columns(Job, 'j')} FROM {Job._meta.db_table} j WHERE j.id = %s", [job.pk])
        row = cursor.fetchone()
    loaded = sqlbatch.from_row(Job, row)
    assert model_to_dict(loaded) == model_to_dict(Job.objects.get(pk=job.pk))
    assert loaded.pk == job.pk and not loaded._state.adding
