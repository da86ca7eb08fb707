"""One delivery (a pulse.notify job) as its receiver meets it: the body it gets, a receiver that
fails in each way (retried when trying again may help, with the reason in the delivery's
history), a target disabled since the delivery was queued, and the mail server's failures."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from jobs.models import Job
from jobs.runner import claim, rescue_expired, run_job
from jobs.services import job_submit
from pulse_site.notifications.models import Rule
from pulse_site.notifications.services import (
    notifications_match,
    rule_create,
    target_create,
    target_send_test,
    target_update,
)

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


@pytest.fixture
def ops(acme):
    return target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)


@pytest.fixture
def hook(acme, receiver):
    target = target_create(team=acme, name="hook", kind="webhook", address=receiver["url"], by=None)
    receiver["answer"]["secret"] = target.secret
    return target


def failed_job(team) -> Job:
    job = job_submit(team=team, handler="pulse.fail", payload={"code": "timeout", "message": "too slow",
                                                                "retryable": False}, source="api").job
    run_job(job.public_id)
    return Job.objects.get(pk=job.pk)


# --- the body ------------------------------------------------------------------------------------


def test_a_test_sends_body_is_the_documented_one_with_its_delivery_id(hook, receiver):
    delivery = target_send_test(target=hook, by="alice")
    run_job(delivery.public_id)

    [request] = receiver["received"]
    assert (request["signed"], request["fresh"]) == (True, True)
    assert json.loads(request["body"]) == {
        "delivery": delivery.public_id,
        "target": hook.public_id,
        "subject": "Pulse test notification for hook",
        "text": "alice sent this test from Pulse.",
        "event": {"id": None, "kind": "test", "subject": hook.public_id, "payload": {}},
    }
    # Compact JSON with sorted keys: the bytes signed are the bytes sent.
    assert request["body"] == json.dumps(json.loads(request["body"]), separators=(",", ":"), sort_keys=True).encode()


def test_a_rules_body_carries_the_outbox_event_with_the_job_as_the_api_gives_it(acme, hook, receiver):
    rule_create(team=acme, target=hook, kind=Rule.Kind.JOB_FAILED, by=None)
    notifications_match()
    job = failed_job(acme)
    assert notifications_match() == 1
    delivery = Job.objects.get(handler="pulse.notify")
    run_job(delivery.public_id)

    body = json.loads(receiver["received"][0]["body"])
    assert sorted(body) == ["delivery", "event", "subject", "target", "text"]
    assert (body["delivery"], body["subject"], body["text"]) == (
        delivery.public_id, f"Job {job.public_id} (pulse.fail) failed", "timeout: too slow")
    assert sorted(body["event"]) == ["id", "kind", "payload", "subject"]
    assert (body["event"]["kind"], body["event"]["subject"]) == ("job.failed", job.public_id)
    assert isinstance(body["event"]["id"], int)
    assert (body["event"]["payload"]["id"], body["event"]["payload"]["status"], body["event"]["payload"]["error"]) == (
        job.public_id, "failed", {"code": "timeout", "message": "too slow"})


# --- a receiver that fails -------------------------------------------------------------------------


def test_a_receiver_that_answers_at_once_and_trickles_its_body_does_not_hold_the_delivery(hook, receiver):
    receiver["answer"]["drip"] = 1.0  # ten seconds for the whole body
    delivery = target_send_test(target=hook, by="alice")
    started = time.monotonic()
    run_job(delivery.public_id)

    assert time.monotonic() - started < 5  # the status is all a delivery needs
    assert Job.objects.get(pk=delivery.pk).status == Status.COMPLETED


def test_a_redirect_is_not_followed_and_the_delivery_says_why(hook, receiver):
    receiver["answer"].update(status=302, location="http://169.254.169.254/latest/meta-data/")
    delivery = target_send_test(target=hook, by="alice")
    run_job(delivery.public_id)

    job = Job.objects.get(pk=delivery.pk)
    assert (job.status, job.error_code, job.attempts) == (Status.FAILED, "network_error", 1)
    # The URL masked, as every delivery error names it (its path may be the receiver's secret).
    host = receiver["url"].removesuffix("/hook")
    assert job.error_message == (f"POST {host}/… answered 302: redirects are not followed; "
                                 "point the target at the final URL.")
    assert len(receiver["received"]) == 1


def test_a_delivery_whose_worker_was_lost_is_tried_again(hook):
    delivery = target_send_test(target=hook, by="alice")
    assert claim(delivery.public_id) is not None
    Job.objects.filter(pk=delivery.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert rescue_expired() == 1

    job = Job.objects.get(pk=delivery.pk)
    assert (job.status, job.error_code, job.attempts) == (Status.QUEUED, "worker_lost", 1)


def test_an_unreachable_mail_server_is_retried_as_a_network_error(ops, settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    delivery = target_send_test(target=ops, by="alice")
    run_job(delivery.public_id)

    job = Job.objects.get(pk=delivery.pk)
    assert (job.status, job.error_code, job.attempts) == (Status.QUEUED, "network_error", 1)
    assert job.error_message.startswith(f"Mail to ops@example.com through 127.0.0.1:{port} failed: ")
    assert job.run_after is not None


# --- what is sent, and to whom ---------------------------------------------------------------------


def test_a_rules_delivery_queued_before_its_target_was_disabled_is_not_sent(acme, ops):
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    notifications_match()
    failed_job(acme)
    assert notifications_match() == 1
    target_update(target=ops, changes={"enabled": False}, by=None)
    delivery = Job.objects.get(handler="pulse.notify")
    run_job(delivery.public_id)

    job = Job.objects.get(pk=delivery.pk)
    assert (job.status, job.error_code, job.attempts) == (Status.FAILED, "validation_error", 1)
    assert job.error_message == "The target ops is disabled: nothing was sent."
    assert mail.outbox == []
    # A test send still goes: it is how one checks a target before turning it back on.
    test = target_send_test(target=ops, by="alice")
    run_job(test.public_id)
    assert Job.objects.get(pk=test.pk).status == Status.COMPLETED
    assert [m.subject for m in mail.outbox] == ["Pulse test notification for ops"]


def deactivate(user, active: bool = False) -> None:
    user.is_active = active
    user.save(update_fields=["is_active"])  # what the admin's user page does


def failure_delivered(team) -> Job:
    """A job of `team` fails, the rules match it, and its one delivery runs."""
    notifications_match()
    failed_job(team)
    assert notifications_match() == 1
    delivery = Job.objects.filter(handler="pulse.notify").order_by("-id").first()
    run_job(delivery.public_id)
    return Job.objects.get(pk=delivery.pk)


def test_mail_to_a_deactivated_members_address_is_not_sent_until_they_are_reactivated(acme, bob):
    bobs = target_create(team=acme, name="bob", kind="email", address="Bob@Example.com", by=None)
    rule_create(team=acme, target=bobs, kind=Rule.Kind.JOB_FAILED, by=None)
    deactivate(bob)

    job = failure_delivered(acme)
    assert (job.status, job.error_code, job.attempts) == (Status.FAILED, "validation_error", 1)
    assert job.error_message == ("Nothing was sent: Bob@Example.com is the address of bob in this team, whose user "
                                 "is deactivated; mail goes to it again once reactivated.")
    test = target_send_test(target=bobs, by="alice")
    run_job(test.public_id)
    assert Job.objects.get(pk=test.pk).status == Status.FAILED
    assert mail.outbox == []

    deactivate(bob, active=True)
    assert failure_delivered(acme).status == Status.COMPLETED
    assert [m.to for m in mail.outbox] == [["Bob@Example.com"]]


def test_a_delivery_queued_before_its_member_was_deactivated_is_not_sent(acme, bob):
    bobs = target_create(team=acme, name="bob", kind="email", address="bob@example.com", by=None)
    rule_create(team=acme, target=bobs, kind=Rule.Kind.JOB_FAILED, by=None)
    notifications_match()
    failed_job(acme)
    assert notifications_match() == 1
    deactivate(bob)
    delivery = Job.objects.get(handler="pulse.notify")
    run_job(delivery.public_id)
    assert Job.objects.get(pk=delivery.pk).status == Status.FAILED
    assert mail.outbox == []


def test_an_address_stored_with_spaces_or_capitals_on_the_user_is_matched(acme, bob, ops):
    bob.email = "  OPS@example.com "
    bob.save(update_fields=["email"])
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    deactivate(bob)
    assert failure_delivered(acme).error_message.startswith("Nothing was sent: ops@example.com is the address of bob")


def test_mail_to_an_address_an_active_member_shares_with_a_deactivated_one_is_sent(acme, bob, vic, ops):
    for user in (bob, vic):
        user.email = "ops@example.com"
        user.save(update_fields=["email"])
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    deactivate(bob)
    assert failure_delivered(acme).status == Status.COMPLETED
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]


def test_another_teams_deactivated_user_or_a_user_in_no_team_at_the_address_does_not_matter(acme, globex, charlie, ops):
    from tests.conftest import make_user

    charlie.email = "ops@example.com"
    charlie.save(update_fields=["email"])
    deactivate(charlie)
    deactivate(make_user("loner", email="ops@example.com"))
    rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    assert failure_delivered(acme).status == Status.COMPLETED
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]


def test_a_subject_with_line_breaks_is_mailed_on_one_line(acme, ops):
    from schedules.services import schedule_create, schedule_mark_broken

    rule_create(team=acme, target=ops, kind=Rule.Kind.SCHEDULE_BROKEN, by=None)
    schedule = schedule_create(team=acme, name="nightly\r\nBcc: someone@example.com", handler="pulse.noop",
                               cron="0 3 * * *")
    notifications_match()
    schedule_mark_broken(schedule=schedule, reason="The handler 'gone' is not registered.")
    assert notifications_match() == 1
    delivery = Job.objects.get(handler="pulse.notify")
    run_job(delivery.public_id)

    assert Job.objects.get(pk=delivery.pk).status == Status.COMPLETED
    [message] = mail.outbox
    assert message.subject == "Schedule nightly Bcc: someone@example.com broke and stopped firing"
    assert (message.to, message.bcc) == (["ops@example.com"], [])


# --- where it goes ---------------------------------------------------------------------------------


def test_a_delivery_goes_to_the_address_checked_not_to_what_the_name_resolves_to_a_moment_later(
        hook, receiver, monkeypatch):
    """DNS rebinding: the name answers an allowed address to the check and another to the
    connection. The delivery connects where the check looked (with the name as its Host)."""
    real = socket.getaddrinfo
    port = int(receiver["url"].rsplit(":", 1)[1].split("/")[0])
    answers = iter(["127.0.0.1"])  # then 127.0.0.2: loopback, not allow-listed, nobody listening

    def rebinding(host, *args, **kwargs):
        if host == "hooks.example":
            return real(next(answers, "127.0.0.2"), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    target_update(target=hook, changes={"address": f"http://hooks.example:{port}/hook"}, by=None)
    delivery = target_send_test(target=hook, by="alice")
    run_job(delivery.public_id)

    assert Job.objects.get(pk=delivery.pk).status == Status.COMPLETED
    [request] = receiver["received"]
    assert (request["headers"]["Host"], request["signed"]) == (f"hooks.example:{port}", True)
