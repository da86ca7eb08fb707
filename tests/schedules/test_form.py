"""The schedule form asks for the payload as the new-job form does: once a handler is chosen, one
input per field of its schema (built by the same code), a JSON box only where fields cannot carry
the payload; the stored payload is shown as written on edit, and the preview costs what the
fields say."""

from __future__ import annotations

from decimal import Decimal

import pytest

from jobs.forms import SubmitForm
from jobs.handlers.registry import get_handler
from pulse_site.live.models import Event
from schedules.forms import ScheduleForm
from schedules.models import Schedule
from tests.dashboard.test_forms import value_of

pytestmark = pytest.mark.django_db

SETTINGS = {"name": "Sleeper", "description": "", "cron": "0 3 * * *", "time_zone": "UTC", "enabled": "on",
            "overlap_policy": "skip", "misfire_policy": "once", "estimate_override": ""}


@pytest.fixture
def rows_handler(temp_handler):
    """A handler whose estimate is read from its payload: 0.01 per row."""
    temp_handler("test.rows", cost=lambda payload: Decimal("0.01") * payload["rows"],
                 schema={"type": "object", "required": ["rows"],
                         "properties": {"rows": {"type": "integer", "minimum": 1},
                                        "label": {"type": "string", "default": "all rows"}}})(lambda ctx: None)


def test_the_new_schedule_page_asks_for_a_handler_first_as_the_new_job_page_does(alice_client):
    response = alice_client.get("/schedules/new/")
    body = response.content.decode()
    assert response.status_code == 200 and response.context["form"] is None
    assert '<select id="id_handler_choice" name="handler">' in body and 'value="pulse.sleep"' in body
    assert 'id="schedule-form"' not in body
    assert alice_client.get("/schedules/new/?handler=nope").context["form"] is None


def test_a_chosen_handlers_fields_are_inputs_with_their_rules_and_defaults_named_not_filled_in(alice_client):
    response = alice_client.get("/schedules/new/?handler=pulse.sleep")
    body = response.content.decode()
    form = response.context["form"]
    assert '<input type="hidden" name="handler" value="pulse.sleep"' in body
    assert 'name="payload"' not in body  # no JSON box beside the fields
    assert '<label for="id_payload.steps">steps:</label>' in body
    # A schedule keeps its payload as written and each run gets the defaults deployed then, so a
    # default is said, not typed into the payload.
    assert value_of(body, "payload.steps") is None and value_of(body, "payload.seconds") is None
    assert form["payload.steps"].help_text == "At least 1; at most 10000. Empty: each run gets the handler's default, 5"
    assert 'id="id_payload.steps_helptext"' in body


def test_a_schedule_made_through_the_fields_keeps_the_payload_as_typed(alice_client, acme):
    response = alice_client.post("/schedules/new/", {**SETTINGS, "handler": "pulse.sleep", "payload.steps": "3",
                                                     "payload.seconds": ""})
    schedule = Schedule.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/schedules/{schedule.public_id}/"
    assert (schedule.handler, schedule.payload) == ("pulse.sleep", {"steps": 3})


def test_a_refused_payload_field_shows_under_its_input_and_nothing_is_saved(alice_client, acme):
    response = alice_client.post("/schedules/new/", {**SETTINGS, "handler": "pulse.sleep", "payload.steps": "0",
                                                     "payload.seconds": "2.5"})
    assert response.status_code == 400
    assert response.context["form"].errors == {"payload.steps": ["0 is less than the minimum of 1"]}
    body = response.content.decode()
    assert '<ul class="errorlist" id="id_payload.steps_error"><li>0 is less than the minimum of 1</li></ul>' in body
    assert 'aria-invalid="true" aria-describedby="id_payload.steps_helptext id_payload.steps_error"' in body
    assert (value_of(body, "payload.steps"), value_of(body, "payload.seconds"), value_of(body, "name")) == (
        "0", "2.5", "Sleeper")
    not_a_number = alice_client.post("/schedules/new/", {**SETTINGS, "handler": "pulse.sleep", "payload.steps": "many"})
    assert not_a_number.status_code == 400 and list(not_a_number.context["form"].errors) == ["payload.steps"]
    assert not Schedule.objects.exists()


def test_an_unknown_handler_posted_is_refused_and_nothing_is_saved(alice_client, acme):
    response = alice_client.post("/schedules/new/", {**SETTINGS, "handler": "pulse.notify", "payload": "{}"})
    assert response.status_code == 400 and response.context["form"] is None
    assert [str(m) for m in response.context["messages"]] == ["Choose one of the listed handlers."]
    assert not Schedule.objects.exists()


def test_editing_shows_the_stored_payload_as_written_and_saving_it_back_adds_no_defaults(alice_client,
                                                                                          make_schedule):
    schedule = make_schedule(handler="pulse.sleep", payload={"steps": 3})
    response = alice_client.get(f"/schedules/{schedule.public_id}/edit/")
    form = response.context["form"]
    assert (form["payload.steps"].value(), form["payload.seconds"].value()) == (3, None)
    body = response.content.decode()
    assert value_of(body, "payload.steps") == "3" and value_of(body, "payload.seconds") is None
    assert 'selected>Sleep in steps (pulse.sleep)</option>' in body  # the chooser, on its handler
    events = Event.objects.count()

    unchanged = {**SETTINGS, "name": schedule.name, "cron": schedule.cron, "handler": "pulse.sleep",
                 "payload.steps": "3", "payload.seconds": ""}
    assert alice_client.post(f"/schedules/{schedule.public_id}/edit/", unchanged).status_code == 302
    schedule.refresh_from_db()
    assert schedule.payload == {"steps": 3}
    assert Event.objects.count() == events  # nothing changed, nothing said

    alice_client.post(f"/schedules/{schedule.public_id}/edit/", {**unchanged, "payload.seconds": "0.5"})
    schedule.refresh_from_db()
    assert schedule.payload == {"steps": 3, "seconds": 0.5}


def test_a_refused_edit_names_the_field_and_changes_nothing(alice_client, make_schedule):
    schedule = make_schedule(handler="pulse.sleep", payload={"steps": 3})
    before = list(Schedule.objects.values())
    response = alice_client.post(f"/schedules/{schedule.public_id}/edit/", {
        **SETTINGS, "handler": "pulse.sleep", "payload.steps": "20000", "payload.seconds": ""})
    assert response.status_code == 400
    assert response.context["form"].errors == {"payload.steps": ["20000 is greater than the maximum of 10000"]}
    assert list(Schedule.objects.values()) == before


def test_another_handler_chosen_on_the_edit_page_shows_its_fields_and_the_schedules_other_values(alice_client,
                                                                                                make_schedule):
    schedule = make_schedule(name="Nightly", handler="pulse.sleep", payload={"steps": 3})
    response = alice_client.get(f"/schedules/{schedule.public_id}/edit/?handler=pulse.fail")
    form = response.context["form"]
    assert form["handler"].value() == "pulse.fail" and form["name"].value() == "Nightly"
    assert form["payload.code"].value() is None and "payload.steps" not in form.fields  # starts blank
    body = response.content.decode()
    assert f'action="/schedules/{schedule.public_id}/edit/"' in body  # the chooser stays on this page
    saved = alice_client.post(f"/schedules/{schedule.public_id}/edit/", {
        **SETTINGS, "handler": "pulse.fail", "payload.code": "timeout", "payload.retryable": "unknown"})
    assert saved.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.handler, schedule.payload) == ("pulse.fail", {"code": "timeout"})


def test_a_schedule_whose_handler_is_gone_asks_for_another_to_edit_it(alice_client, make_schedule):
    schedule = make_schedule(handler="pulse.sleep", payload={"steps": 3})
    Schedule.objects.filter(pk=schedule.pk).update(handler="retired.handler")
    response = alice_client.get(f"/schedules/{schedule.public_id}/edit/")
    assert response.status_code == 200 and response.context["form"] is None
    assert [str(m) for m in response.context["messages"]] == [
        "Its handler retired.handler is no longer deployed: choose one to edit “Nightly report”."]


def test_a_nested_field_is_a_json_input_as_on_the_job_form_and_its_inner_errors_land_on_it(alice_client,
                                                                                           make_schedule):
    fields = {**SETTINGS, "handler": "http.request", "payload.url": "https://example.com/x",
              "payload.method": "GET", "payload.headers": '{"X-Team": 5}'}
    refused = alice_client.post("/schedules/new/", fields)
    assert refused.status_code == 400
    assert refused.context["form"].errors == {"payload.headers": ["X-Team: 5 is not of type 'string'"]}
    assert not Schedule.objects.exists()

    assert alice_client.post("/schedules/new/", {**fields, "payload.headers": '{"X-Team": "acme"}'}).status_code == 302
    schedule = Schedule.objects.get()
    assert schedule.payload == {"url": "https://example.com/x", "method": "GET", "headers": {"X-Team": "acme"}}
    form = alice_client.get(f"/schedules/{schedule.public_id}/edit/").context["form"]
    assert form["payload.headers"].value() == '{"X-Team": "acme"}'
    assert form["payload.timeout"].value() is None


def test_a_handler_without_fields_takes_a_json_object(alice_client, acme):
    body = alice_client.get("/schedules/new/?handler=pulse.noop").content.decode()
    assert value_of(body, "payload") == "{}"
    assert alice_client.post("/schedules/new/", {**SETTINGS, "handler": "pulse.noop", "payload": "{nope"}
                             ).status_code == 400
    assert alice_client.post("/schedules/new/", {**SETTINGS, "handler": "pulse.noop", "payload": '{"a": [1]}'}
                             ).status_code == 302
    schedule = Schedule.objects.get()
    assert schedule.payload == {"a": [1]}
    assert '&quot;a&quot;: [' in alice_client.get(f"/schedules/{schedule.public_id}/edit/").content.decode()


@pytest.mark.parametrize("stored, kept_by_name", [
    ({"rows": 2, "note": "from the API"}, "note"),  # a key the schema allows but names no field for
    ({"rows": 2, "label": ""}, "label"),  # an empty optional text would be left out (the default then)
])
def test_a_stored_payload_the_fields_cannot_carry_is_edited_as_json_so_nothing_is_lost(alice_client, make_schedule,
                                                                                        rows_handler, stored,
                                                                                        kept_by_name):
    schedule = make_schedule(handler="test.rows", payload=stored)
    response = alice_client.get(f"/schedules/{schedule.public_id}/edit/")
    form = response.context["form"]
    assert "payload" in form.fields and "payload.rows" not in form.fields
    body = response.content.decode()
    assert 'id="payload-as-json"' in body and f"<code>{kept_by_name}</code>" in body
    typed_back = {**SETTINGS, "name": schedule.name, "cron": schedule.cron, "handler": "test.rows",
                  "payload": form["payload"].value()}
    assert alice_client.post(f"/schedules/{schedule.public_id}/edit/", typed_back).status_code == 302
    schedule.refresh_from_db()
    assert schedule.payload == stored

    # Refused, the page keeps the JSON box it was sent with (and what was typed in it).
    refused = alice_client.post(f"/schedules/{schedule.public_id}/edit/", {**typed_back, "payload": '{"rows": 0}'})
    assert refused.status_code == 400
    assert refused.context["form"].errors == {"payload": ["rows: 0 is less than the minimum of 1"]}
    assert value_of(refused.content.decode(), "payload") == "{&quot;rows&quot;: 0}"


def test_the_preview_costs_the_payload_typed_in_the_fields(alice_client, acme, rows_handler):
    typed = {"cron": "0 * * * *", "time_zone": "UTC", "handler": "test.rows", "name": "ignored"}
    body = alice_client.get("/schedules/preview/", {**typed, "payload.rows": "10"}).json()
    assert body["projection"] == "Next 30 days: about 720 runs × 0.1 = 72 (2.4 a day on average)"
    for half in ("", "ten", "0"):  # not typed yet, not a number yet, refused: no estimate, and no error
        answer = alice_client.get("/schedules/preview/", {**typed, "payload.rows": half})
        assert answer.status_code == 200 and "no estimate" in answer.json()["projection"]


def test_the_job_form_and_the_schedule_form_build_a_handlers_inputs_alike(db):
    """One piece of code: the same input for each field, the same label and rules; only the
    default differs (a job is submitted with it, a schedule's runs get it when they run)."""
    for name in ("http.request", "pulse.fail", "pulse.sleep", "demo.report"):
        handler = get_handler(name)
        job, schedule = SubmitForm(handler), ScheduleForm(handler)
        inputs = [key for key in job.fields if key.startswith("payload.")]
        assert inputs == [key for key in schedule.fields if key.startswith("payload.")] and inputs, name
        for key in inputs:
            made = job.fields[key], schedule.fields[key]
            assert type(made[0]) is type(made[1]) and made[0].label == made[1].label, key
            assert type(made[0].widget) is type(made[1].widget) and made[0].required == made[1].required, key
            assert schedule.fields[key].help_text.startswith(job.fields[key].help_text), key
