"""A webhook's URL may carry its secret (Slack's /services/T…/B…/XXXX, Discord's /api/webhooks/<id>/<token>,
a ?token=): it is shown in full only to those who manage notifications (owners and admins, signed
in), masked to members, viewers and tokens, and a delivery's errors never carry its path or query."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from jobs.models import Attempt, Job
from jobs.runner import run_job
from pulse_site.live.models import Event
from pulse_site.notifications.addresses import mask_url, mask_urls_in
from pulse_site.notifications.models import Target
from pulse_site.notifications.services import target_create
from pulse_site.teams.models import Membership
from tests.conftest import logged_in, token_client

pytestmark = pytest.mark.django_db(transaction=True)

SLACK = "https://hooks.slack.com/services/T000/B000/XXXXXXXXSECRET"
SLACK_MASKED = "https://hooks.slack.com/…"


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize(("url", "masked"), [
    (SLACK, SLACK_MASKED),
    ("https://discord.com/api/webhooks/123/tokenSECRET", "https://discord.com/…"),
    ("https://example.com:8443/hook?token=SECRET#frag", "https://example.com:8443/…"),
    ("https://user:SECRET@example.com/hook", "https://example.com/…"),
    ("http://[2001:db8::1]:8080/SECRET", "http://[2001:db8::1]:8080/…"),
    ("https://example.com", "https://example.com/…"),
    ("HTTPS://Example.com/SECRET", "https://Example.com/…"),
])
def test_a_url_is_masked_to_its_scheme_host_and_port(url, masked):
    assert mask_url(url) == masked


def test_every_url_in_a_text_is_masked_and_the_rest_is_kept():
    text = f"POST {SLACK} failed: 'http://10.0.0.1:80/services/T000/B000/XXXXXXXXSECRET' refused"
    assert mask_urls_in(text) == f"POST {SLACK_MASKED} failed: 'http://10.0.0.1:80/…' refused"


@pytest.fixture
def hooks(acme) -> tuple[Target, Target]:
    webhook = target_create(team=acme, name="slack", kind="webhook", address=SLACK, by=None)
    email = target_create(team=acme, name="on-call", kind="email", address="oncall@example.com", by=None)
    return webhook, email


def _make_admin(user, team) -> None:
    Membership.objects.filter(team=team, user=user).update(role=Membership.Role.ADMIN)


# --- The page ------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "admin"])
def test_owners_and_admins_see_the_full_url_on_the_page(who, alice, bob, acme, hooks):
    if who == "admin":
        _make_admin(bob, acme)
    page = logged_in(alice if who == "alice" else bob).get("/notifications/").content.decode()
    assert SLACK in page and "oncall@example.com" in page


@pytest.mark.parametrize("who", ["bob", "vic"])
def test_members_and_viewers_see_the_url_masked_on_the_page(who, bob, vic, acme, hooks):
    page = logged_in(bob if who == "bob" else vic).get("/notifications/").content.decode()
    assert "XXXXXXXXSECRET" not in page and "/services/" not in page
    assert SLACK_MASKED in page and "oncall@example.com" in page


def test_charlies_page_shows_nothing_of_acmes_webhook(charlie_client, hooks):
    page = charlie_client.get("/notifications/").content.decode()
    assert "hooks.slack.com" not in page and "slack" not in page


# --- The API -------------------------------------------------------------------------------------


def _targets(client: APIClient, webhook: Target) -> tuple[list[dict], dict]:
    listed = client.get("/api/v1/notifications/targets/")
    detail = client.get(f"/api/v1/notifications/targets/{webhook.public_id}/")
    assert listed.status_code == detail.status_code == 200
    return listed.json(), detail.json()


@pytest.mark.parametrize("who", ["alice", "admin"])
def test_owners_and_admins_get_the_full_url_from_the_api(who, alice, bob, acme, hooks):
    if who == "admin":
        _make_admin(bob, acme)
    webhook, _ = hooks
    listed, detail = _targets(session(alice if who == "alice" else bob), webhook)
    assert [(t["name"], t["address"], t["address_masked"]) for t in listed] == [
        ("on-call", "oncall@example.com", False), ("slack", SLACK, False)]
    assert (detail["address"], detail["address_masked"]) == (SLACK, False)


@pytest.mark.parametrize("who", ["bob", "vic", "read token", "write token"])
def test_members_viewers_and_tokens_get_the_url_masked_from_the_api(who, bob, vic, acme, hooks):
    client = {"bob": lambda: session(bob), "vic": lambda: session(vic),
              "read token": lambda: token_client(acme, "read"), "write token": lambda: token_client(acme, "write")}[who]()
    webhook, _ = hooks
    listed, detail = _targets(client, webhook)
    assert [(t["name"], t["address"], t["address_masked"]) for t in listed] == [
        ("on-call", "oncall@example.com", False), ("slack", SLACK_MASKED, True)]
    assert (detail["address"], detail["address_masked"]) == (SLACK_MASKED, True)


def test_another_teams_token_gets_nothing_of_acmes_webhook(globex_api, hooks):
    webhook, _ = hooks
    assert globex_api.get("/api/v1/notifications/targets/").json() == []
    assert globex_api.get(f"/api/v1/notifications/targets/{webhook.public_id}/").status_code == 404
    assert globex_api.get(f"/api/v1/notifications/targets/{webhook.public_id}/deliveries/").status_code == 404


# --- Delivery history ----------------------------------------------------------------------------


def _failed_delivery(alice, target: Target) -> Job:
    job_id = session(alice).post(f"/api/v1/notifications/targets/{target.public_id}/test/").json()["id"]
    run_job(job_id)
    return Job.objects.get(public_id=job_id)


def _assert_no_secret(text: str) -> None:
    assert "SECRET" not in text and "/services/" not in text


@pytest.mark.parametrize("answer", [500, 302])
def test_a_delivery_answered_with_an_error_is_recorded_without_the_urls_path(answer, alice, acme, receiver):
    receiver["answer"].update(status=answer, location="https://elsewhere.example/")
    target = target_create(team=acme, name="hook", kind="webhook",
                           address=receiver["url"] + "/services/T0/B0/SECRET?token=SECRET", by=None)
    receiver["answer"]["secret"] = target.secret
    job = _failed_delivery(alice, target)
    host = receiver["url"].removesuffix("/hook")
    assert job.error_message.startswith(f"POST {host}/… answered {answer}")
    [attempt] = Attempt.objects.filter(job=job)
    _assert_no_secret(attempt.error_message + attempt.traceback)
    events = [json.dumps(e.payload) for e in Event.objects.filter(subject=job.public_id)]
    assert any("answered" in payload for payload in events)
    _assert_no_secret(" ".join(events))


def test_a_delivery_that_cannot_connect_is_recorded_without_the_urls_path(settings, alice, acme):
    settings.PULSE_HTTP_ALLOWLIST = ["127.0.0.1"]
    target = target_create(team=acme, name="hook", kind="webhook",
                           address="http://127.0.0.1:1/services/T0/B0/SECRET?token=SECRET", by=None)
    job = _failed_delivery(alice, target)
    assert job.error_message.startswith("POST http://127.0.0.1:1/… failed")
    [attempt] = Attempt.objects.filter(job=job)
    _assert_no_secret(attempt.error_message + attempt.traceback)


@pytest.mark.parametrize("who", ["alice", "bob", "vic"])
def test_the_pages_delivery_history_shows_no_secret(who, alice, bob, vic, acme, receiver):
    receiver["answer"]["status"] = 500
    target = target_create(team=acme, name="hook", kind="webhook",
                           address=receiver["url"] + "/services/T0/B0/SECRET", by=None)
    receiver["answer"]["secret"] = target.secret
    job = _failed_delivery(alice, target)
    page = logged_in({"alice": alice, "bob": bob, "vic": vic}[who]).get("/notifications/").content.decode()
    history = page[page.index(job.public_id):]
    assert "answered 500" in history
    _assert_no_secret(history[:history.index("</table>")])


@pytest.mark.parametrize("client", ["read token", "bob"])
def test_the_apis_delivery_history_shows_no_secret(client, alice, bob, acme, receiver):
    receiver["answer"]["status"] = 500
    target = target_create(team=acme, name="hook", kind="webhook",
                           address=receiver["url"] + "/services/T0/B0/SECRET", by=None)
    receiver["answer"]["secret"] = target.secret
    job = _failed_delivery(alice, target)
    api = token_client(acme, "read") if client == "read token" else session(bob)
    deliveries = api.get(f"/api/v1/notifications/targets/{target.public_id}/deliveries/")
    [delivery] = deliveries.json()
    assert delivery["id"] == job.public_id and "answered 500" in deliveries.content.decode()
    _assert_no_secret(deliveries.content.decode())
    detail = api.get(f"/api/v1/jobs/{job.public_id}/")
    assert detail.status_code == 200
    _assert_no_secret(detail.content.decode())


def test_an_email_targets_address_stays_in_its_delivery_errors(alice, acme, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1
    target = target_create(team=acme, name="on-call", kind="email", address="oncall@example.com", by=None)
    job = _failed_delivery(alice, target)
    assert job.error_message.startswith("Mail to oncall@example.com through 127.0.0.1:1 failed")

