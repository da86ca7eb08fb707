"""The API takes JSON's own types, as its OpenAPI schema documents them: an integer field refuses
"5", a boolean "true" or 1, a text field 5, a money field (a decimal string) a number; each refusal
is a 400 naming the field and what was expected, with nothing written. A query string has no types:
its integers are plain digits and its booleans `true` or `false`."""

from __future__ import annotations

import pytest

from budgets.models import BudgetPolicy, Override
from jobs.models import Job
from pulse_site.notifications.models import Rule
from schedules.models import Schedule
from schedules.services import schedule_create
from tests.conftest import token_client


@pytest.fixture
def api(acme):
    return token_client(acme)


def refusal(response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    body = response.json()["error"]
    assert body["code"] == "validation_error"
    return body["fields"]


@pytest.mark.parametrize("body, field, reason", [
    ({"handler": "pulse.noop", "priority": "5"}, "priority", "Expected an integer, not a string."),
    ({"handler": "pulse.noop", "priority": 5.0}, "priority", "Expected an integer, not a number with a decimal "
                                                             "point or an exponent."),
    ({"handler": "pulse.noop", "priority": True}, "priority", "Expected an integer, not true or false."),
    ({"handler": 5}, "handler", "Expected a string, not a number."),
    ({"handler": ["pulse.noop"]}, "handler", "Expected a string, not a list."),
    ({"handler": "pulse.noop", "delay_seconds": "60"}, "delay_seconds", "Expected an integer, not a string."),
    ({"handler": "pulse.noop", "run_after": 1767225600}, "run_after", "Expected a string or null, not a number."),
    ({"handler": None}, "handler", "Expected a string, not null."),
])
def test_a_submit_refuses_a_value_of_the_wrong_json_type_by_field(api, acme, body, field, reason):
    assert refusal(api.post("/api/v1/jobs/", body, format="json")) == {field: [reason]}
    assert refusal(api.post("/api/v1/jobs/preview/", body, format="json")) == {field: [reason]}
    assert not Job.objects.filter(team=acme).exists()


def test_every_field_of_the_wrong_type_is_named_at_once_with_the_other_refusals(api, acme):
    body = {"handler": 7, "priority": "5", "delay_seconds": 1.5, "runn_after": "x"}
    assert refusal(api.post("/api/v1/jobs/", body, format="json")) == {
        "delay_seconds": ["Expected an integer, not a number with a decimal point or an exponent."],
        "handler": ["Expected a string, not a number."],
        "priority": ["Expected an integer, not a string."],
        "runn_after": ["Unknown field."],
    }


def test_a_list_items_and_a_nested_objects_fields_are_typed_too(api, acme):
    refused = refusal(api.post("/api/v1/jobs/bulk/", {"action": "cancel", "ids": ["JB_x", 5]}, format="json"))
    assert refused == {"ids.1": ["Expected a string, not a number."]}
    refused = refusal(api.post("/api/v1/jobs/bulk/matching/",
                               {"action": "cancel", "filter": {"status": 1, "handler": "pulse.noop"}}, format="json"))
    assert refused == {"filter.status": ["Expected a string, not a number."]}
    refused = refusal(api.post("/api/v1/jobs/bulk/matching/", {"action": "cancel", "filter": []}, format="json"))
    assert refused == {"filter": ["Expected an object, not a list."]}


def test_the_right_types_are_taken_as_before(api, acme):
    response = api.post("/api/v1/jobs/", {"handler": "pulse.noop", "priority": -5, "delay_seconds": 60,
                                          "payload": {"anything": ["goes", 1, 1.5, True, None]}}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["priority"] == -5


@pytest.mark.parametrize("body, field, reason", [
    ({"enabled": "false"}, "enabled", "Expected true or false, not a string."),
    ({"enabled": 0}, "enabled", "Expected true or false, not a number."),
    ({"name": 42}, "name", "Expected a string, not a number."),
    ({"overlap_policy": 1}, "overlap_policy", "Expected a string, not a number."),
    ({"cron": None}, "cron", "Expected a string, not null."),
])
def test_a_schedule_refuses_a_value_of_the_wrong_json_type_by_field(api, acme, body, field, reason):
    schedule = schedule_create(team=acme, name="Nightly", handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
    create = {"name": "Other", "handler": "pulse.noop", "cron": "0 4 * * *", **body}
    assert refusal(api.post("/api/v1/schedules/", create, format="json")) == {field: [reason]}
    assert refusal(api.patch(f"/api/v1/schedules/{schedule.public_id}/", body, format="json")) == {field: [reason]}
    schedule.refresh_from_db()
    assert (schedule.name, schedule.enabled, schedule.cron) == ("Nightly", True, "0 3 * * *")
    assert Schedule.objects.filter(team=acme).count() == 1


@pytest.mark.parametrize("body, field, reason", [
    ({"daily_limit": 10}, "daily_limit", "Expected a decimal string (e.g. \"10.50\") or null, not a number."),
    ({"daily_limit": 0.30000000000000004}, "daily_limit",
     "Expected a decimal string (e.g. \"10.50\") or null, not a number with a decimal point or an exponent."),
    ({"calls_per_minute": "5"}, "calls_per_minute", "Expected an integer or null, not a string."),
    ({"week_start": "3"}, "week_start", "Expected an integer, not a string."),
    ({"alert_thresholds": "80,100"}, "alert_thresholds", "Expected a list, not a string."),
    ({"alert_thresholds": [80, "100"]}, "alert_thresholds.1", "Expected an integer, not a string."),
    ({"handler_caps": {"pulse.noop": {"daily": 1}}}, "handler_caps.pulse.noop.daily",
     "Expected a decimal string (e.g. \"10.50\") or null, not a number."),
    ({"over_budget": True}, "over_budget", "Expected a string, not true or false."),
])
def test_the_budget_refuses_a_value_of_the_wrong_json_type_by_field(alice_client, acme, body, field, reason):
    response = alice_client.patch("/api/v1/budget/", body, content_type="application/json")
    assert refusal(response) == {field: [reason]}
    assert not BudgetPolicy.objects.filter(team=acme).exclude(daily_limit=None).exists()


def test_the_budget_takes_its_documented_types(alice_client, acme):
    response = alice_client.patch("/api/v1/budget/", {"daily_limit": "0.3", "calls_per_minute": 5, "week_start": 3,
                                                      "alert_thresholds": [80, 100], "weekly_limit": None},
                                  content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["daily_limit"] == "0.3"
    assert (response.json()["calls_per_minute"], response.json()["week_start"]) == (5, 3)


def test_an_override_amount_is_a_decimal_string(alice_client, acme):
    body = {"amount": 5, "expires_at": "2099-01-01T00:00:00Z", "reason": "launch"}
    response = alice_client.post("/api/v1/budget/overrides/", body, content_type="application/json")
    assert refusal(response) == {"amount": ["Expected a decimal string (e.g. \"10.50\"), not a number."]}
    assert not Override.objects.exists()


def test_a_notification_rule_and_the_team_refuse_strings_for_numbers_and_booleans(alice_client, acme):
    response = alice_client.post("/api/v1/notifications/rules/", {"target": "NT_any", "kind": "held_long", "minutes": "30",
                                                                  "final_only": "1"},
                                 content_type="application/json")
    assert refusal(response) == {"final_only": ["Expected true or false, not a string."],
                                 "minutes": ["Expected an integer or null, not a string."]}
    assert not Rule.objects.exists()
    response = alice_client.patch("/api/v1/team/", {"job_retention_days": "30"}, content_type="application/json")
    assert refusal(response) == {"job_retention_days": ["Expected an integer or null, not a string."]}


@pytest.mark.parametrize("query, field, reason", [
    ("all=1", "all", "true or false."),
    ("all=yes", "all", "true or false."),
    ("all=True", "all", "true or false."),
    ("limit=5.0", "limit", "A whole number."),
    ("limit=%20%205", "limit", "A whole number."),
    ("limit=%D9%A5", "limit", "A whole number."),  # an Arabic-Indic five, which int() reads as 5
    ("cursor=+5", "cursor", "An event id (a whole number)."),
])
def test_a_query_parameter_is_written_as_its_schema_says(api, query, field, reason):
    assert refusal(api.get(f"/api/v1/events/?{query}")) == {field: [reason]}


def test_a_query_string_boolean_and_number_as_documented_are_taken(api):
    assert api.get("/api/v1/events/?all=true&limit=5").status_code == 200
    assert api.get("/api/v1/events/?all=false").status_code == 200
    assert refusal(api.get("/api/v1/stats/?hours=1e1")) == {"hours": ["A whole number."]}
    assert api.get("/api/v1/stats/?hours=10").status_code == 200


@pytest.mark.parametrize("body, sent", [("[1, 2]", "a list"), ("null", "null"), ('"x"', "a string"),
                                        ("5", "a number"), ("true", "true or false")])
@pytest.mark.parametrize("method, url", [
    ("post", "/api/v1/jobs/"), ("post", "/api/v1/schedules/preview/"), ("patch", "/api/v1/budget/"),
    ("post", "/api/v1/tokens/"), ("post", "/api/v1/queue/resume/"),
])
def test_a_body_that_is_no_json_object_is_refused_naming_the_body_on_every_endpoint(alice_client, method, url,
                                                                                     body, sent):
    """It was `non_field_errors` "Invalid data. Expected a dictionary, but got list." on most
    endpoints, "No data provided" for null, and the budget's own `body` refusal on one."""
    response = getattr(alice_client, method)(url, body, content_type="application/json")
    assert refusal(response) == {"body": [f"Expected an object, not {sent}."]}


def test_a_name_given_twice_in_a_json_object_is_refused_by_its_path_not_the_last_one_taken(api, acme):
    """`{"priority": 1, "priority": "x"}` was read as its last value, silently: which one a client's
    library, a proxy or a log reader takes differs, so neither is."""
    response = api.post("/api/v1/jobs/", '{"handler": "pulse.noop", "priority": 1, "priority": 2}',
                        content_type="application/json")
    assert refusal(response) == {"priority": ["Given twice; a name is given once in a JSON object."]}
    response = api.post("/api/v1/jobs/", '{"handler": "pulse.noop", "payload": {"a": [{"b": 1, "b": 1}]}}',
                        content_type="application/json")
    assert refusal(response) == {"payload.a.0.b": ["Given twice; a name is given once in a JSON object."]}
    assert not Job.objects.filter(team=acme).exists()
