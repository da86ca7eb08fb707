"""Notification targets (signed webhooks, email), rules matched from the outbox, deliveries as
pulse.notify jobs, test sends and history; nothing of one team reachable from another."""

from __future__ import annotations

import json

import httpx
import pytest
from django.core import mail
from rest_framework.test import APIClient

from jobs.models import Job
from jobs.runner import run_job
from jobs.services import job_submit
from pulse_site.notifications.models import Rule, Target
from pulse_site.errors import ValidationError
from pulse_site.notifications.services import notifications_match, rule_create, target_create

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_a_test_webhook_is_delivered_signed_with_the_targets_secret(alice, acme, receiver):
    client = session(alice)
    created = client.post("/api/v1/notifications/targets/", {"name": "ops", "kind": "webhook",
                                                             "address": receiver["url"]}, format="json")
    assert created.status_code == 201
    target = created.json()
    receiver["answer"]["secret"] = target["secret"]
    sent = client.post(f"/api/v1/notifications/targets/{target['id']}/test/")
    assert sent.status_code == 202 and sent.json()["handler"] == "pulse.notify"
    run_job(sent.json()["id"])

    assert Job.objects.get(public_id=sent.json()["id"]).status == Status.COMPLETED
    [request] = receiver["received"]
    assert (request["signed"], request["fresh"]) == (True, True)
    body = json.loads(request["body"])
    assert body["subject"] == "Pulse test notification for ops" and body["target"] == target["id"]
    deliveries = client.get(f"/api/v1/notifications/targets/{target['id']}/deliveries/").json()
    assert [d["id"] for d in deliveries] == [sent.json()["id"]]


def test_a_captured_delivery_cannot_be_replayed(alice, acme, receiver):
    target = target_create(team=acme, name="ops", kind="webhook", address=receiver["url"], by=None)
    receiver["answer"]["secret"] = target.secret
    run_job(session(alice).post(f"/api/v1/notifications/targets/{target.public_id}/test/").json()["id"])
    [captured] = receiver["received"]
    headers = {k: v for k, v in captured["headers"].items() if k.startswith("X-Pulse") or k == "Content-Type"}

    # Ten minutes later, sent again as captured: too old.
    receiver["answer"]["skew"] = 600
    assert httpx.post(receiver["url"], content=captured["body"], headers=headers).status_code == 401
    # With a fresh timestamp: the signature covers the timestamp, so it no longer matches.
    receiver["answer"]["skew"] = 0
    forged = {**headers, "X-Pulse-Timestamp": str(int(headers["X-Pulse-Timestamp"]) + 1)}
    assert httpx.post(receiver["url"], content=captured["body"], headers=forged).status_code == 401
    assert [(r["signed"], r["fresh"]) for r in receiver["received"]] == [(True, True), (True, False), (False, True)]


def test_after_a_secret_rotation_deliveries_are_signed_with_the_new_secret(alice, acme, receiver):
    client = session(alice)
    target = target_create(team=acme, name="ops", kind="webhook", address=receiver["url"], by=None)
    receiver["answer"]["secret"] = target.secret
    rotated = client.patch(f"/api/v1/notifications/targets/{target.public_id}/", {"rotate_secret": True},
                           format="json").json()
    stale = client.post(f"/api/v1/notifications/targets/{target.public_id}/test/").json()["id"]
    run_job(stale)  # the receiver still checks the old secret: refused, and a 401 is not retried
    job = Job.objects.get(public_id=stale)
    assert (job.status, job.error_code, job.attempts) == (Status.FAILED, "network_error", 1)

    receiver["answer"]["secret"] = rotated["secret"]
    fresh = client.post(f"/api/v1/notifications/targets/{target.public_id}/test/").json()["id"]
    run_job(fresh)
    assert Job.objects.get(public_id=fresh).status == Status.COMPLETED
    assert [r["signed"] for r in receiver["received"]] == [False, True]


def test_a_webhook_answering_500_is_retried_with_backoff(alice, acme, receiver):
    receiver["answer"]["status"] = 500
    target = target_create(team=acme, name="ops", kind="webhook", address=receiver["url"], by=None)
    receiver["answer"]["secret"] = target.secret
    job_id = session(alice).post(f"/api/v1/notifications/targets/{target.public_id}/test/").json()["id"]
    run_job(job_id)
    job = Job.objects.get(public_id=job_id)
    assert (job.status, job.error_code, job.attempts) == (Status.QUEUED, "network_error", 1)
    assert job.run_after is not None


def test_an_email_target_gets_the_test_by_mail(alice, acme):
    target = target_create(team=acme, name="on-call", kind="email", address="oncall@example.com", by=None)
    job_id = session(alice).post(f"/api/v1/notifications/targets/{target.public_id}/test/").json()["id"]
    run_job(job_id)
    [message] = mail.outbox
    assert message.to == ["oncall@example.com"] and message.subject == "Pulse test notification for on-call"


def test_a_job_failed_rule_queues_a_delivery_for_the_last_attempt_of_matching_handlers(acme, temp_handler):
    @temp_handler("test.breaks", max_attempts=1)
    def breaks(ctx):
        raise RuntimeError("disk full")

    @temp_handler("test.other", max_attempts=1)
    def other(ctx):
        raise RuntimeError("nope")

    target = target_create(team=acme, name="on-call", kind="email", address="oncall@example.com", by=None)
    rule_create(team=acme, target=target, kind=Rule.Kind.JOB_FAILED, handlers=["test.breaks"], by=None)
    notifications_match()  # the cursor starts at "now"
    failing = job_submit(team=acme, handler="test.breaks", payload={}, source="api").job
    ignored = job_submit(team=acme, handler="test.other", payload={}, source="api").job
    run_job(failing.public_id)
    run_job(ignored.public_id)

    assert notifications_match() == 1
    delivery = Job.objects.get(handler="pulse.notify")
    assert delivery.origin == target.public_id
    assert delivery.payload["subject"] == f"Job {failing.public_id} (test.breaks) failed"
    assert delivery.payload["text"] == "unknown: RuntimeError: disk full"
    assert notifications_match() == 0  # each event once
    run_job(delivery.public_id)
    assert mail.outbox[0].subject == f"Job {failing.public_id} (test.breaks) failed"


def test_a_job_failed_rule_with_error_codes_hears_only_failures_with_those_codes(acme, acme_api):
    target = target_create(team=acme, name="on-call", kind="email", address="oncall@example.com", by=None)
    rule = rule_create(team=acme, target=target, kind=Rule.Kind.JOB_FAILED, error_codes=["worker_lost", "timeout"],
                       by=None)
    assert rule.error_codes == ["timeout", "worker_lost"]
    notifications_match()
    heard = job_submit(team=acme, handler="pulse.fail", payload={"code": "timeout", "retryable": False},
                       source="api").job
    unheard = job_submit(team=acme, handler="pulse.fail", payload={"code": "validation_error"}, source="api").job
    run_job(heard.public_id)
    run_job(unheard.public_id)
    assert notifications_match() == 1
    assert Job.objects.get(handler="pulse.notify").payload["subject"] == f"Job {heard.public_id} (pulse.fail) failed"

    # Over the API: listed, and a code nobody knows is refused naming the field, changing nothing.
    listed = acme_api.get("/api/v1/notifications/rules/").json()
    assert [r["error_codes"] for r in listed] == [["timeout", "worker_lost"]]
    with pytest.raises(ValidationError) as refused:
        rule_create(team=acme, target=target, kind=Rule.Kind.JOB_FAILED, error_codes=["disk_full"], by=None)
    assert "error_codes" in refused.value.fields and Rule.objects.count() == 1
    # Another kind of rule has no use for codes: refused by name, not kept to mislead nor dropped unsaid.
    with pytest.raises(ValidationError) as refused:
        rule_create(team=acme, target=target, kind=Rule.Kind.BUDGET_THRESHOLD, error_codes=["timeout"], by=None)
    assert refused.value.fields == {"error_codes": ["Only job_failed rules take error codes; a budget_threshold rule has none."]}
    assert rule_create(team=acme, target=target, kind=Rule.Kind.BUDGET_THRESHOLD, error_codes=[], by=None).error_codes == []


def test_a_failed_delivery_does_not_notify_about_itself(acme):
    target = target_create(team=acme, name="gone", kind="email", address="x@example.com", by=None)
    rule_create(team=acme, target=target, kind=Rule.Kind.JOB_FAILED, by=None)
    notifications_match()
    delivery = job_submit(team=acme, handler="pulse.notify", payload={"target": "NT_missing", "subject": "s",
                                                                      "event": {}}, source="api", internal=True).job
    run_job(delivery.public_id)
    assert Job.objects.get(pk=delivery.pk).status == Status.FAILED
    assert notifications_match() == 0


def test_members_cannot_add_targets_and_nothing_changes(bob, acme):
    response = session(bob).post("/api/v1/notifications/targets/", {"name": "x", "kind": "email",
                                                                     "address": "x@example.com"}, format="json")
    assert response.status_code == 403
    assert Target.objects.count() == 0


def test_a_bad_address_is_refused_with_the_field(alice, acme):
    response = session(alice).post("/api/v1/notifications/targets/", {"name": "x", "kind": "webhook",
                                                                      "address": "ftp://x"}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["address"]


def test_charlie_gets_404_for_acmes_targets_and_nothing_is_sent(charlie, acme, globex):
    target = target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)
    client = session(charlie)
    assert client.post(f"/api/v1/notifications/targets/{target.public_id}/test/").status_code == 404
    assert client.get(f"/api/v1/notifications/targets/{target.public_id}/deliveries/").status_code == 404
    # A rule naming Acme's target names none of Globex's: a 400 on the field, as for one that does not exist.
    response = client.post("/api/v1/notifications/rules/", {"target": target.public_id, "kind": "job_failed"},
                           format="json")
    assert response.status_code == 400 and response.json()["error"]["fields"] == {
        "target": ["No such notification target in this team."]}
    assert client.get("/api/v1/notifications/targets/").json() == []
    assert (Job.objects.filter(handler="pulse.notify").count(), Rule.objects.count()) == (0, 0)


# --- The page ------------------------------------------------------------------------------------


def test_the_page_adds_a_target_sends_a_test_and_shows_the_delivery(alice_client, acme):
    assert alice_client.post("/notifications/targets/new/", {"name": "on-call", "kind": "email",
                                                              "address": "oncall@example.com"}).status_code == 302
    target = Target.objects.get(team=acme)
    assert alice_client.post(f"/notifications/targets/{target.public_id}/test/").status_code == 302
    delivery = Job.objects.get(handler="pulse.notify", origin=target.public_id)
    page = alice_client.get("/notifications/").content.decode()
    assert delivery.public_id in page and "Pulse test notification for on-call" in page
    alice_client.post("/notifications/rules/new/", {"kind": "job_failed", "target": target.public_id,
                                                    "handlers": ["pulse.noop"], "final_only": "on"})
    rule = Rule.objects.get()
    assert (rule.kind, rule.handlers, rule.final_only) == ("job_failed", ["pulse.noop"], True)


def test_members_see_the_page_without_buttons_and_cannot_send(bob_client, acme):
    target = target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)
    page = bob_client.get("/notifications/").content.decode()
    assert "ops@example.com" in page and "Send test" not in page
    assert bob_client.post(f"/notifications/targets/{target.public_id}/test/").status_code == 403
    assert not Job.objects.filter(handler="pulse.notify").exists()


def test_charlies_page_shows_nothing_of_acme_and_his_test_of_acmes_target_is_404(charlie_client, acme, globex):
    target = target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)
    assert "ops@example.com" not in charlie_client.get("/notifications/").content.decode()
    assert charlie_client.post(f"/notifications/targets/{target.public_id}/test/").status_code == 404
    # A rule naming Acme's target names none of his: refused as one that does not exist.
    refused = charlie_client.post("/notifications/rules/new/", {"kind": "job_failed", "target": target.public_id})
    assert refused.status_code == 400 and "No such notification target in this team." in refused.content.decode()
    assert not Job.objects.filter(handler="pulse.notify").exists() and not Rule.objects.exists()


# --- A job that names its target -----------------------------------------------------------------


def test_a_job_submitted_with_notify_tells_its_target_once_when_it_ends(acme, acme_api):
    target = target_create(team=acme, name="ci", kind="email", address="ci@example.com", by=None)
    notifications_match()
    response = acme_api.post("/api/v1/jobs/", {"handler": "pulse.noop", "notify": target.public_id}, format="json")
    assert response.status_code == 201
    job_id = response.json()["id"]
    run_job(job_id)
    assert notifications_match() == 1
    delivery = Job.objects.get(handler="pulse.notify")
    assert delivery.payload["subject"] == f"Job {job_id} (pulse.noop) completed"
    run_job(delivery.public_id)
    assert mail.outbox[0].to == ["ci@example.com"]
    assert notifications_match() == 0


def test_an_idempotency_keys_repeat_with_another_notify_is_another_request(acme, acme_api):
    """notify was left out of what a key's repeat is compared on: a repeat naming another target (or
    none) answered 200 with the first job, and the target it named never heard of it."""
    from pulse_site.notifications.models import JobWatch

    ci = target_create(team=acme, name="ci", kind="email", address="ci@example.com", by=None)
    ops = target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)

    def submit(**notify):
        return acme_api.post("/api/v1/jobs/", {"handler": "pulse.noop", **notify}, format="json",
                             HTTP_IDEMPOTENCY_KEY="nightly")

    first, again = submit(notify=ci.public_id), submit(notify=ci.public_id)
    other, none = submit(notify=ops.public_id), submit()
    assert [r.status_code for r in (first, again, other, none)] == [201, 200, 409, 409]
    assert again.json()["id"] == first.json()["id"]
    assert other.json()["error"] == none.json()["error"] == {
        "code": "idempotency_conflict", "message": "Idempotency-Key was already used with a different request.",
        "fields": {"idempotency_key": ["Used before with a different body."]}}
    assert list(JobWatch.objects.values_list("job_id", "target__name")) == [(first.json()["id"], "ci")]
    assert Job.objects.count() == 1


def test_an_idempotency_keys_repeat_after_the_job_ended_and_its_target_was_told_is_the_same_request(acme, acme_api):
    """A repeat was compared with the job's watches, which the target's delivery deletes: a client
    retrying its very request once the job had ended got 409 idempotency_conflict."""
    ci = target_create(team=acme, name="ci", kind="email", address="ci@example.com", by=None)
    notifications_match()

    def submit(**notify):
        return acme_api.post("/api/v1/jobs/", {"handler": "pulse.noop", **notify}, format="json",
                             HTTP_IDEMPOTENCY_KEY="nightly")

    first = submit(notify=ci.public_id)
    run_job(first.json()["id"])
    assert notifications_match() == 1  # told, and its watch gone
    again, other = submit(notify=ci.public_id), submit()
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert other.status_code == 409
    assert Job.objects.filter(handler="pulse.noop").count() == 1


def test_notify_naming_another_teams_target_is_refused_and_no_job_is_created(acme, globex, globex_api):
    target = target_create(team=acme, name="ci", kind="email", address="ci@example.com", by=None)
    response = globex_api.post("/api/v1/jobs/", {"handler": "pulse.noop", "notify": target.public_id}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"notify": ["No such notification target in this team."]}
    assert not Job.objects.exists()


def test_a_schedule_broken_rule_tells_its_target_why(acme):
    from schedules.services import schedule_create, schedule_mark_broken

    target = target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)
    rule_create(team=acme, target=target, kind=Rule.Kind.SCHEDULE_BROKEN, by=None)
    schedule = schedule_create(team=acme, name="nightly", handler="pulse.noop", cron="0 3 * * *")
    notifications_match()
    schedule_mark_broken(schedule=schedule, reason="The handler 'gone' is not registered.")
    assert notifications_match() == 1
    delivery = Job.objects.get(handler="pulse.notify")
    assert delivery.payload["subject"] == "Schedule nightly broke and stopped firing"
    assert delivery.payload["text"] == "The handler 'gone' is not registered."
