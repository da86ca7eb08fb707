"""Deliveries that failed before pulse.notify masked its errors stored the webhook's whole URL (its
secret with it): migration 0006 masks them where they are kept (the job's error, its attempts'
errors and tracebacks, its log lines, its events) and leaves everything else as it was."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from jobs.models import Attempt, Job, TaskLog
from pulse_site.live.models import Event

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("notifications", "0005_rule_error_codes")
MIGRATION = ("notifications", "0006_mask_webhook_urls_in_delivery_errors")
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
DISCORD = "https://discord.com/api/webhooks/123/tokenSECRET"
REFUSED = "[Errno 111] Connection refused"


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


@pytest.fixture
def before_the_migration(transactional_db):
    """The database as it was before 0006; migrated to the end again afterwards, whatever the test did."""
    migrate(BEFORE)
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def job(team, handler: str, error: str, **fields) -> Job:
    return Job.objects.create(team=team, handler=handler, status=Job.Status.FAILED if error else Job.Status.COMPLETED,
                              error_code="network_error" if error else "", error_message=error, attempts=1, **fields)


def traceback_of(message: str) -> str:
    return ('Traceback (most recent call last):\n  File "/srv/pulse/pulse_site/notifications/handlers.py", line 70, '
            f'in _post_webhook\n    raise JobError(ErrorCode.NETWORK_ERROR, f"POST {{url}} failed: {{exc}}")\n'
            f"jobs.error_codes.JobError: {message}\n")


def failed_event(failed: Job) -> Event:
    return Event.objects.create(team=failed.team, kind="job.failed", subject=failed.public_id, payload={
        "id": failed.public_id, "handler": failed.handler, "status": "failed",
        "error": {"code": failed.error_code, "message": failed.error_message}})


def test_webhook_urls_in_old_delivery_errors_are_masked_and_nothing_else_changes(before_the_migration, acme, globex):
    slack_failed = job(acme, "pulse.notify", f"POST {SLACK} failed: {REFUSED}")
    slack_attempt = Attempt.objects.create(job=slack_failed, number=1, outcome="failed", error_message=slack_failed.error_message,
                                           traceback=traceback_of(slack_failed.error_message))
    slack_log = TaskLog.objects.create(job=slack_failed, attempt=1, level="error",
                                       message=f"Failed after 12 ms with network_error: POST {SLACK} failed: {REFUSED}")
    started_log = TaskLog.objects.create(job=slack_failed, attempt=1, message="Attempt 1 started on w1")
    slack_event = failed_event(slack_failed)
    # Retried and delivered: the job's error is gone, its first attempt's and its log line stay.
    discord_delivered = job(globex, "pulse.notify", "")
    discord_attempt = Attempt.objects.create(job=discord_delivered, number=1, outcome="retrying",
                                             error_message=f"POST {DISCORD}?wait=true answered 502")
    discord_log = TaskLog.objects.create(job=discord_delivered, attempt=1, level="warning", message=(
        f"Failed after 40 ms with network_error: POST {DISCORD}?wait=true answered 502; retrying in 5.0 s"))
    # Untouched: a team's own http.request (its URL is its payload's), a mail delivery, one already masked.
    own_request = job(acme, "http.request", "GET https://api.example.com/items?token=theirs answered 500")
    own_attempt = Attempt.objects.create(job=own_request, number=1, outcome="failed", error_message=own_request.error_message,
                                         traceback=traceback_of(own_request.error_message))
    own_event = failed_event(own_request)
    mail = job(acme, "pulse.notify", f"Mail to oncall@example.com through 127.0.0.1:1 failed: ConnectionRefusedError({REFUSED!r})")
    masked_already = job(acme, "pulse.notify", "POST https://hooks.slack.com/… answered 500")
    untouched = [(model, list(model.objects.filter(pk__in=[row.pk for row in rows]).values()))
                 for model, rows in ((Job, [own_request, mail, masked_already]), (Attempt, [own_attempt]),
                                     (TaskLog, [started_log]), (Event, [own_event]))]

    migrate(MIGRATION)

    assert Job.objects.get(pk=slack_failed.pk).error_message == f"POST https://hooks.slack.com/… failed: {REFUSED}"
    slack_attempt.refresh_from_db()
    assert slack_attempt.error_message == f"POST https://hooks.slack.com/… failed: {REFUSED}"
    assert slack_attempt.traceback == traceback_of(f"POST https://hooks.slack.com/… failed: {REFUSED}")
    assert TaskLog.objects.get(pk=slack_log.pk).message == (
        f"Failed after 12 ms with network_error: POST https://hooks.slack.com/… failed: {REFUSED}")
    slack_event.refresh_from_db()
    assert slack_event.payload == {"id": slack_failed.public_id, "handler": "pulse.notify", "status": "failed", "error": {
        "code": "network_error", "message": f"POST https://hooks.slack.com/… failed: {REFUSED}"}}
    assert Attempt.objects.get(pk=discord_attempt.pk).error_message == "POST https://discord.com/… answered 502"
    assert TaskLog.objects.get(pk=discord_log.pk).message == (
        "Failed after 40 ms with network_error: POST https://discord.com/… answered 502; retrying in 5.0 s")
    for model, rows in untouched:
        assert list(model.objects.filter(pk__in=[row["id"] for row in rows]).values()) == rows


def test_every_old_delivery_error_is_masked_however_many_batches_it_takes(before_the_migration, acme, monkeypatch):
    migration = importlib.import_module(f"pulse_site.notifications.migrations.{MIGRATION[1]}")
    monkeypatch.setattr(migration, "BATCH", 2)
    deliveries = [job(acme, "pulse.notify", f"POST {SLACK}/{n} answered 500") for n in range(5)]
    for delivery in deliveries:
        Attempt.objects.create(job=delivery, number=1, outcome="failed", error_message=delivery.error_message)
        TaskLog.objects.create(job=delivery, attempt=1, level="error", message=delivery.error_message)
        failed_event(delivery)

    migrate(MIGRATION)

    masked = "POST https://hooks.slack.com/… answered 500"
    assert set(Job.objects.values_list("error_message", flat=True)) == {masked}
    assert set(Attempt.objects.values_list("error_message", flat=True)) == {masked}
    assert set(TaskLog.objects.values_list("message", flat=True)) == {masked}
    assert {e.payload["error"]["message"] for e in Event.objects.filter(kind="job.failed")} == {masked}


def test_the_migration_reverses_as_nothing_to_undo(before_the_migration, acme):
    delivery = job(acme, "pulse.notify", f"POST {SLACK} answered 500")
    migrate(MIGRATION)

    migrate(BEFORE)

    assert Job.objects.get(pk=delivery.pk).error_message == "POST https://hooks.slack.com/… answered 500"
