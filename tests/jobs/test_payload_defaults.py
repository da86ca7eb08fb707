"""A payload schema's defaults are filled in at submit: the handler, its estimator and the job's
page see the payload that ran, so a handler reads `ctx.payload["pages"]` instead of repeating the
default as `ctx.payload.get("pages", 1)`."""

from __future__ import annotations

import html
import json
from decimal import Decimal

import pytest

from jobs.handlers import handler
from jobs.handlers.registry import unregister
from jobs.models import Job
from jobs.runner import run_job
from schedules.models import Schedule
from schedules.services import schedule_create, schedule_trigger

REPORT = {
    "type": "object",
    "required": ["account"],
    "properties": {
        "account": {"type": "string"},
        "pages": {"type": "integer", "minimum": 1, "default": 2},
        "options": {"type": "object", "properties": {"dpi": {"type": "integer", "default": 300},
                                                     "format": {"enum": ["pdf", "csv"]}}},
        "charts": {"type": "array", "items": {"type": "object", "properties": {
            "kind": {"type": "string"}, "legend": {"type": "boolean", "default": True}}}},
        "tags": {"type": "array", "default": []},
    },
}


@pytest.fixture
def report(temp_handler):
    seen = []

    def build(ctx):
        seen.append(ctx.payload)
        return {"pages": ctx.payload["pages"]}

    temp_handler("test.report", schema=REPORT, cost=lambda payload: Decimal("0.01") * payload["pages"])(build)
    return seen


@pytest.mark.django_db(transaction=True)
def test_a_payload_that_leaves_a_field_out_runs_with_its_default(acme_api, report):
    response = acme_api.post("/api/v1/jobs/", {"handler": "test.report", "payload": {"account": "a-1"}}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["payload"] == {"account": "a-1", "pages": 2, "tags": []}
    assert Decimal(body["cost_estimate"]) == Decimal("0.02")  # the estimator saw the default
    run_job(body["id"])
    assert report == [{"account": "a-1", "pages": 2, "tags": []}]
    assert Job.objects.get(public_id=body["id"]).result == {"pages": 2}


def test_given_values_are_kept_and_nested_objects_get_their_own_defaults(acme, report):
    from jobs.services import job_submit

    given = {"account": "a-1", "pages": 7, "options": {"format": "csv"}, "charts": [{"kind": "bar"}, {"legend": False}]}
    job = job_submit(team=acme, handler="test.report", payload=given, source="api").job
    assert job.payload == {"account": "a-1", "pages": 7, "tags": [], "options": {"format": "csv", "dpi": 300},
                           "charts": [{"kind": "bar", "legend": True}, {"legend": False}]}
    assert given == {"account": "a-1", "pages": 7, "options": {"format": "csv"},
                     "charts": [{"kind": "bar"}, {"legend": False}]}  # the caller's own dict is left alone
    assert job.cost_estimate == 70_000


def test_a_default_is_checked_with_the_rest_of_the_payload(acme_api, report):
    response = acme_api.post("/api/v1/jobs/", {"handler": "test.report", "payload": {"pages": 0}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"payload.account": ["Required."],
                                                  "payload.pages": ["0 is less than the minimum of 1"]}
    assert not Job.objects.exists()


def test_a_schedule_keeps_its_payload_as_written_and_each_run_gets_the_defaults(acme, report):
    schedule = schedule_create(team=acme, name="Reports", handler="test.report", payload={"account": "a-1"},
                               cron="0 6 * * *", time_zone="UTC")
    assert schedule.payload == {"account": "a-1"}  # a later deployment's default applies to later runs
    execution = schedule_trigger(schedule=schedule, by="alice")
    assert Job.objects.get(pk=execution.job_id).payload == {"account": "a-1", "pages": 2, "tags": []}


@pytest.mark.parametrize(("prop", "reason"), [
    ({"type": "integer", "minimum": 1, "default": 0}, "the default of payload.pages does not fit it: "
                                                      "0 is less than the minimum of 1"),
    ({"type": "object", "properties": {"dpi": {"type": "integer", "default": "300"}}},
     "the default of payload.pages.dpi does not fit it: '300' is not of type 'integer'"),
])
def test_a_default_that_does_not_fit_its_field_is_refused_at_start_up(prop, reason):
    """Every payload leaving the field out would be refused, naming a field the submitter left out."""
    try:
        with pytest.raises(ValueError) as refused:
            handler("test.bad_default", title="Bad", cost="0",
                    schema={"type": "object", "properties": {"pages": prop}})(lambda ctx: None)
    finally:
        unregister("test.bad_default")
    assert str(refused.value) == f"handler test.bad_default: {reason}"


@pytest.mark.django_db(transaction=True)
def test_a_job_queued_before_a_default_was_added_runs_with_it(acme, report):
    from jobs.services import job_submit

    job = job_submit(team=acme, handler="test.report", payload={"account": "a-1"}, source="api").job
    Job.objects.filter(pk=job.pk).update(payload={"account": "a-1"})  # as written by the deployment before
    run_job(job.public_id)
    assert report == [{"account": "a-1", "pages": 2, "tags": []}]
    assert Job.objects.get(pk=job.pk).status == Job.Status.COMPLETED


def test_a_repeat_with_its_idempotency_key_after_a_default_changed_is_the_same_request(acme_api, report,
                                                                                       temp_handler):
    request = {"handler": "test.report", "payload": {"account": "a-1"}}
    first = acme_api.post("/api/v1/jobs/", request, format="json", HTTP_IDEMPOTENCY_KEY="nightly-7")
    assert first.status_code == 201
    schema = {**REPORT, "properties": {**REPORT["properties"], "pages": {"type": "integer", "default": 3}}}
    temp_handler("test.report", schema=schema)(lambda ctx: None)  # the next deployment
    again = acme_api.post("/api/v1/jobs/", request, format="json", HTTP_IDEMPOTENCY_KEY="nightly-7")
    assert again.status_code == 200, again.json()
    assert again.json()["id"] == first.json()["id"] and again.json()["payload"]["pages"] == 2
    assert Job.objects.count() == 1


def test_a_schedules_cost_projection_is_estimated_on_the_payload_with_its_defaults(acme, alice_client, report):
    """The runs' estimator reads payload["pages"]: given the schedule's payload as written, it
    refused it, and the schedule's page, API and form said "no estimate" for runs that cost 0.02."""
    from schedules.selectors import schedule_projection

    schedule = schedule_create(team=acme, name="Reports", handler="test.report", payload={"account": "a-1"},
                               cron="0 6 * * *", time_zone="UTC")
    typed = alice_client.get("/schedules/preview/", {"cron": "0 6 * * *", "time_zone": "UTC",
                                                     "handler": "test.report", "payload": '{"account": "a-1"}'})

    assert schedule_projection(schedule).per_run == 20_000
    assert "× 0.02 =" in typed.json()["projection"]


# --- The size limit is the stored payload's ------------------------------------------------------

LIMIT = 1024
TEMPLATE = "t" * 600  # the default the handler fills in: a payload leaving it out grows by 615 bytes


@pytest.fixture
def padded(temp_handler, settings):
    settings.PULSE_MAX_PAYLOAD_BYTES = LIMIT
    schema = {"type": "object", "properties": {"note": {"type": "string"},
                                               "template": {"type": "string", "default": TEMPLATE}}}
    temp_handler("test.padded", schema=schema, cost="0")(lambda ctx: None)


def size(payload) -> int:
    return len(json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def note_for(stored_size: int) -> dict[str, str]:
    """A payload of `note` alone whose stored form (with the template filled in) has `stored_size` bytes."""
    note = "n" * (stored_size - size({"note": "", "template": TEMPLATE}))
    assert size({"note": note, "template": TEMPLATE}) == stored_size
    return {"note": note}


OVER = f"The payload is {LIMIT + 1} bytes with the handler's defaults filled in: at most {LIMIT}."


def test_a_payload_its_defaults_take_past_the_limit_is_refused_naming_it_and_nothing_is_written(acme_api, padded):
    from pulse_site.live.models import Event

    payload = note_for(LIMIT + 1)
    assert size(payload) < LIMIT  # within the limit as sent
    events = Event.objects.count()
    response = acme_api.post("/api/v1/jobs/", {"handler": "test.padded", "payload": payload}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "validation_error", "message": f"payload: {OVER}",
                                        "fields": {"payload": [OVER]}}
    assert not Job.objects.exists() and Event.objects.count() == events


def test_a_payload_at_the_limit_with_its_defaults_is_stored(acme_api, padded):
    response = acme_api.post("/api/v1/jobs/", {"handler": "test.padded", "payload": note_for(LIMIT)}, format="json")
    assert response.status_code == 201, response.json()
    assert size(Job.objects.get().payload) == LIMIT


def test_the_new_job_form_says_so_above_its_fields_and_writes_nothing(alice_client, acme, padded):
    form = {"handler": "test.padded", "payload.note": note_for(LIMIT + 1)["note"], "priority": "0"}
    response = alice_client.post("/jobs/new/", form)
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [f"payload: {OVER}"]
    preview = alice_client.get("/jobs/new/preview/", form).content.decode()
    assert f"payload: {OVER}" in html.unescape(preview) and "Estimated cost" not in preview
    assert not Job.objects.exists()


def test_a_schedule_whose_runs_would_be_refused_so_is_refused_itself(acme, acme_api, alice_client, padded):
    body = {"name": "Padded", "handler": "test.padded", "cron": "0 6 * * *", "time_zone": "UTC",
            "payload": note_for(LIMIT + 1)}
    response = acme_api.post("/api/v1/schedules/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"payload": [OVER]}
    form = {**body, "payload": json.dumps(body["payload"]), "overlap_policy": "skip", "misfire_policy": "once"}
    page = alice_client.post("/schedules/new/", form)
    assert page.status_code == 400 and page.context["form"].errors["payload"] == [OVER]
    assert not Schedule.objects.exists()
    assert acme_api.post("/api/v1/schedules/", {**body, "payload": note_for(LIMIT)}, format="json").status_code == 201
