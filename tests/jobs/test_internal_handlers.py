"""Internal handlers (pulse.notify, a notification's delivery) are Pulse's own: no team submits,
previews, schedules, caps or spawns one, on any path, and none is listed or offered; a team naming
one is answered as for a name never registered. Pulse's own deliveries still go."""

from __future__ import annotations

import pytest
from django.core import mail
from rest_framework.test import APIClient

from budgets.services import budget_policy_update
from jobs.handlers.registry import registered_handlers
from jobs.models import Job
from jobs.runner import run_job
from jobs.services import SubmitItem, job_submit, job_submit_many
from pulse_site.errors import ValidationError
from pulse_site.notifications.handlers import NOTIFY_HANDLER
from pulse_site.notifications.services import target_create, target_deliveries, target_send_test
from schedules.models import Schedule
from schedules.services import schedule_create, schedule_update

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(acme):
    """Acme's own webhook: the target a hand-made delivery would be signed for."""
    return target_create(team=acme, name="hook", kind="webhook", address="https://example.com/hook", by=None)


def delivery(target) -> dict:
    return {"target": target.public_id, "subject": "anything", "event": {}}


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def answered_as_unknown(send) -> bool:
    """`send(name)` answers for pulse.notify exactly as for a handler never registered: a 400
    naming `handler`, in the same words but for the name."""
    internal, unknown = send(NOTIFY_HANDLER), send("nope.nothere")
    fields = internal.json()["error"]["fields"]
    return (internal.status_code == unknown.status_code == 400 and list(fields) == ["handler"]
            and internal.content.decode().replace(NOTIFY_HANDLER, "nope.nothere") == unknown.content.decode())


def test_no_team_submits_a_delivery_itself_over_the_api_and_nothing_is_written(alice, acme, acme_api, hook):
    # A write token, and even the team's owner: a delivery is Pulse's to send, not anyone's to ask for.
    for client in (acme_api, session(alice)):
        assert answered_as_unknown(lambda name: client.post(
            "/api/v1/jobs/", {"handler": name, "payload": delivery(hook), "notify": hook.public_id}, format="json"))
    assert not Job.objects.exists() and target_deliveries(target=hook) == []


def test_the_submit_preview_refuses_it_the_same_way(acme_api, hook):
    assert answered_as_unknown(lambda name: acme_api.post(
        "/api/v1/jobs/preview/", {"handler": name, "payload": delivery(hook)}, format="json"))


def test_the_service_refuses_it_to_a_submit_a_batch_and_a_handlers_child(acme, hook, submit, temp_handler):
    with pytest.raises(ValidationError) as caught:
        job_submit(team=acme, handler=NOTIFY_HANDLER, payload=delivery(hook), source=Job.Source.API)
    assert caught.value.fields == {"handler": [f"Unknown handler '{NOTIFY_HANDLER}'."]}
    [refusal] = job_submit_many(items=[SubmitItem(team=acme, handler=NOTIFY_HANDLER, payload=delivery(hook),
                                                  source=Job.Source.SCHEDULE)])
    assert isinstance(refusal, ValidationError) and list(refusal.fields) == ["handler"]

    @temp_handler("test.spawns_a_delivery", max_attempts=1)
    def spawns(ctx):
        ctx.spawn(NOTIFY_HANDLER, delivery(hook))

    parent = submit("test.spawns_a_delivery")
    run_job(parent.public_id)
    parent.refresh_from_db()
    assert parent.status == Job.Status.FAILED and "pulse.notify" in parent.error_message
    assert not Job.objects.filter(handler=NOTIFY_HANDLER).exists()


def test_the_handlers_api_and_page_do_not_list_it_and_its_page_is_404(alice_client, acme_api):
    listed = [h["name"] for h in acme_api.get("/api/v1/handlers/").json()]
    assert NOTIFY_HANDLER not in listed and "pulse.noop" in listed
    assert listed == [h.name for h in registered_handlers()]
    assert acme_api.get(f"/api/v1/handlers/{NOTIFY_HANDLER}/").status_code == 404
    assert NOTIFY_HANDLER not in alice_client.get("/handlers/").content.decode()
    assert alice_client.get(f"/handlers/{NOTIFY_HANDLER}/").status_code == 404


def test_the_new_job_form_neither_offers_nor_takes_it(alice_client, acme, hook):
    assert f'value="{NOTIFY_HANDLER}"' not in alice_client.get("/jobs/new/").content.decode()
    assert 'name="payload.target"' not in alice_client.get(f"/jobs/new/?handler={NOTIFY_HANDLER}").content.decode()
    response = alice_client.post("/jobs/new/", {"handler": NOTIFY_HANDLER, "payload.target": hook.public_id,
                                                "payload.subject": "anything", "payload.event": "{}",
                                                "priority": "0"})
    assert response.status_code == 400 and "Choose one of the listed handlers." in response.content.decode()
    preview = alice_client.get("/jobs/new/preview/", {"handler": NOTIFY_HANDLER, "priority": "0"})
    assert "Choose one of the listed handlers." in preview.content.decode()
    assert not Job.objects.exists()


def test_a_schedule_cannot_be_made_or_changed_to_run_it(acme, acme_api, hook):
    assert answered_as_unknown(lambda name: acme_api.post("/api/v1/schedules/", {
        "name": "Spam", "handler": name, "payload": delivery(hook), "cron": "* * * * *"}, format="json"))
    schedule = schedule_create(team=acme, name="Nightly", handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
    assert answered_as_unknown(lambda name: acme_api.patch(
        f"/api/v1/schedules/{schedule.public_id}/", {"handler": name, "payload": delivery(hook)}, format="json"))
    with pytest.raises(ValidationError):
        schedule_update(schedule=schedule, changes={"handler": NOTIFY_HANDLER, "payload": delivery(hook)})
    assert list(Schedule.objects.values_list("name", "handler")) == [("Nightly", "pulse.noop")]


def test_the_budget_cannot_cap_it(alice, acme):
    def cap(name):
        return session(alice).patch("/api/v1/budget/", {"handler_caps": {name: {"daily": "1"}}}, format="json")

    internal, unknown = cap(NOTIFY_HANDLER), cap("nope.nothere")
    assert internal.status_code == unknown.status_code == 400
    assert list(internal.json()["error"]["fields"]) == [f"handler_caps.{NOTIFY_HANDLER}"]
    assert internal.content.decode().replace(NOTIFY_HANDLER, "nope.nothere") == unknown.content.decode()
    with pytest.raises(ValidationError):
        budget_policy_update(team=acme, changes={"handler_caps": {NOTIFY_HANDLER: {"daily": "1"}}}, by=None)


def test_pulses_own_deliveries_still_go_list_under_their_target_and_filter_with_the_jobs(alice, alice_client, acme):
    ops = target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)
    sent = target_send_test(target=ops, by="alice")
    run_job(sent.public_id)
    assert Job.objects.get(pk=sent.pk).status == Job.Status.COMPLETED
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    assert target_deliveries(target=ops) == [sent]
    # Its jobs are the team's: the list filters by it, and its rows do not link to a page it lacks.
    listed = session(alice).get(f"/api/v1/jobs/?handler={NOTIFY_HANDLER}").json()["results"]
    assert [j["id"] for j in listed] == [sent.public_id]
    page = alice_client.get(f"/jobs/?handler={NOTIFY_HANDLER}").content.decode()
    assert sent.public_id in page and f"/handlers/{NOTIFY_HANDLER}/" not in page
    detail = alice_client.get(f"/jobs/{sent.public_id}/").content.decode()
    assert "action-run-again" not in detail
    again = alice_client.get(f"/jobs/new/?from={sent.public_id}", follow=True).content.decode()
    assert f"{sent.public_id}&#x27;s handler {NOTIFY_HANDLER} is Pulse&#x27;s own" in again
