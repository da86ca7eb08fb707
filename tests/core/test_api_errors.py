"""Every API error has one shape: {"error": {"code", "message", "fields"}} and a 4xx status."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import serializers
from rest_framework.exceptions import Throttled

from pulse_site.api import exception_handler, flatten_errors
from pulse_site.errors import Conflict, PulseError, Unprocessable


def error(response) -> dict:
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


def test_malformed_json_is_a_400_parse_error(alice_client):
    response = alice_client.post("/api/v1/tokens/", "{not json", content_type="application/json")
    assert response.status_code == 400
    body = error(response)
    assert body["code"] == "parse_error"
    assert body["message"].startswith("JSON parse error")
    assert body["fields"] == {}


def test_an_unsupported_content_type_is_a_415(alice_client):
    response = alice_client.post("/api/v1/tokens/", "name=ci", content_type="text/plain")
    assert response.status_code == 415
    assert error(response) == {
        "code": "unsupported_media_type", "message": 'Unsupported media type "text/plain" in request.', "fields": {},
    }


def test_a_wrong_method_is_a_405(alice_client):
    response = alice_client.put("/api/v1/team/", {}, content_type="application/json")
    assert response.status_code == 405
    assert error(response) == {"code": "method_not_allowed", "message": 'Method "PUT" not allowed.', "fields": {}}


def test_an_unknown_api_url_is_a_404_in_the_error_shape(alice_client):
    for url in ("/api/v2/nothing/", "/api/v1/team/members/not-a-number/"):
        response = alice_client.get(url)
        assert response.status_code == 404
        assert error(response) == {"code": "not_found", "message": "No API route matches this URL.", "fields": {}}
        # It said "Allow: PATCH, HEAD, DELETE, GET, OPTIONS, POST, OPTIONS, PUT": no method is allowed here.
        assert not response.has_header("Allow")


@pytest.mark.parametrize("method, url, right", [
    ("get", "/api/v1/jobs", "/api/v1/jobs/"),
    ("post", "/api/v1/schedules/preview", "/api/v1/schedules/preview/"),
    ("get", "/api/v1/jobs/JB_01KT1A0F802SKHTQF349MJ456G/logs", "/api/v1/jobs/JB_01KT1A0F802SKHTQF349MJ456G/logs/"),
])
def test_a_url_without_its_trailing_slash_is_a_404_that_says_so(alice_client, method, url, right):
    response = getattr(alice_client, method)(url, {}, content_type="application/json")
    assert response.status_code == 404
    assert error(response) == {"code": "not_found", "fields": {},
                               "message": f"No API route matches this URL; API URLs end with a slash: {right}"}


def test_a_missing_field_is_a_400_naming_the_field(alice_client):
    response = alice_client.post("/api/v1/tokens/", {"access": "read"}, content_type="application/json")
    assert response.status_code == 400
    assert error(response) == {
        "code": "validation_error", "message": "name: This field is required.",
        "fields": {"name": ["This field is required."]},
    }


@pytest.mark.parametrize("url, body, model", [
    ("/api/v1/jobs/", {"handler": "pulse.noop", "run_at": "2030-01-01T00:00:00Z"}, "jobs.Job"),
    ("/api/v1/schedules/", {"name": "n", "handler": "pulse.noop", "cron": "0 * * * *", "cronn": "x"},
     "schedules.Schedule"),
    ("/api/v1/tokens/", {"name": "ci", "acess": "write"}, "teams.ApiToken"),
    ("/api/v1/budget/overrides/", {"amount": "1", "expires_at": "2030-01-01T00:00:00Z", "reason": "r", "x": 1},
     "budgets.Override"),
])
def test_a_field_the_api_does_not_take_is_refused_by_name_and_nothing_is_written(alice_client, url, body, model):
    """A misspelt or unsupported option (a job's `run_at` for `run_after`) must not look accepted:
    it used to be dropped, and the job ran at once."""
    from django.apps import apps

    rows = apps.get_model(model).objects.count()
    response = alice_client.post(url, body, content_type="application/json")
    assert response.status_code == 400
    extra = next(name for name in body if name in ("run_at", "cronn", "acess", "x"))
    assert error(response) == {"code": "validation_error", "message": f"{extra}: Unknown field.",
                               "fields": {extra: ["Unknown field."]}}
    assert apps.get_model(model).objects.count() == rows


def test_a_service_refusal_keeps_its_status_code_and_fields(alice_client, acme):
    response = alice_client.post("/api/v1/team/members/", {"username": "bob"}, content_type="application/json")
    assert response.status_code == 409
    assert error(response) == {"code": "conflict", "message": "bob is already in Acme.",
                               "fields": {"username": ["Already a member."]}}


def test_unauthenticated_is_a_401_and_forbidden_a_403(db, vic_client):
    from rest_framework.test import APIClient

    assert error(APIClient().get("/api/v1/team/"))["code"] == "not_authenticated"
    response = vic_client.post("/api/v1/tokens/", {"name": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert error(response)["code"] == "permission_denied"


class Line(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField(min_value=1)


class Order(serializers.Serializer):
    customer = serializers.CharField()
    lines = Line(many=True)


def test_nested_serializer_errors_are_flattened_to_dotted_paths():
    order = Order(data={"lines": [{"sku": "a", "quantity": 1}, {"quantity": 0}]})
    assert not order.is_valid()
    response = exception_handler(serializers.ValidationError(order.errors), {})
    assert response.status_code == 400
    assert response.data["error"] == {
        "code": "validation_error",
        "message": "customer: This field is required.",
        "fields": {
            "customer": ["This field is required."],
            "lines.1.sku": ["This field is required."],
            "lines.1.quantity": ["Ensure this value is greater than or equal to 1."],
        },
    }


def test_a_validation_error_without_a_field_is_a_non_field_error():
    response = exception_handler(serializers.ValidationError("Pick one."), {})
    assert response.data["error"] == {
        "code": "validation_error", "message": "Pick one.", "fields": {"non_field_errors": ["Pick one."]},
    }


def test_flattening_keeps_every_reason_of_a_field():
    assert flatten_errors({"a": {"b": ["x", "y"]}, "c": "z"}) == {"a.b": ["x", "y"], "c": ["z"]}


def test_every_pulse_error_keeps_its_code_and_status():
    for exc, status in ((PulseError("Nope."), 400), (Conflict("Taken."), 409), (Unprocessable("Never."), 422)):
        response = exception_handler(exc, {})
        assert response.status_code == status
        assert response.data == {"error": exc.as_dict()}


def test_djangos_404_and_permission_denied_use_the_shape():
    not_found = exception_handler(Http404("gone"), {})
    denied = exception_handler(DjangoPermissionDenied(), {})
    assert (not_found.status_code, not_found.data["error"]["code"]) == (404, "not_found")
    assert (denied.status_code, denied.data["error"]["code"]) == (403, "permission_denied")


def test_throttling_is_a_429_with_retry_after():
    response = exception_handler(Throttled(wait=7), {})
    assert response.status_code == 429
    assert response["Retry-After"] == "7"
    assert response.data["error"] == {
        "code": "throttled", "message": "Request was throttled. Expected available in 7 seconds.", "fields": {},
    }


def test_a_server_bug_is_not_disguised_as_a_client_error():
    assert exception_handler(RuntimeError("bug"), {}) is None


def test_the_openapi_schema_generates_without_a_single_warning(db):
    from django.core.management import call_command

    # --fail-on-warn turns every schema ambiguity (an unannotated view, an enum collision) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_every_bad_query_parameter_is_named_at_once(alice_client):
    response = alice_client.get("/api/v1/jobs/?status=nope&created_after=yesterday&limit=0&schedule=SP_x")
    assert response.status_code == 400
    assert error(response)["fields"] == {
        "status": ["Choose one of queued, paused, running, completed, failed, cancelled."],
        "created_after": ["Use an ISO 8601 date-time, e.g. 2026-11-22T10:00:00Z."],
        "limit": ["From 1 to 200."],
        "schedule": ["A schedule id (SP_…)."],
    }


@pytest.mark.parametrize("url", ["/api/v1/jobs/?stauts=failed", "/api/v1/handlers/?limit=5", "/api/v1/budget/?x=1"])
def test_a_query_parameter_the_endpoint_does_not_take_is_refused_by_name(alice_client, url):
    """A misspelt filter (`stauts`) used to be ignored, and the list answered with every job."""
    name = url.split("?")[1].split("=")[0]
    response = alice_client.get(url)
    assert response.status_code == 400
    assert error(response) == {"code": "validation_error", "message": f"{name}: Unknown query parameter.",
                               "fields": {name: ["Unknown query parameter."]}}


@pytest.mark.parametrize("url", ["/api/v1/jobs/?status=queued&status=failed",
                                 "/api/v1/schedules/?handler=pulse.noop&limit=5&handler=pulse.sleep",
                                 "/api/v1/events/?family=job&family=",
                                 "/api/v1/jobs/?status=failed&limit=2&limit=3"])
def test_a_query_parameter_given_twice_is_refused_by_name(alice_client, acme, url):
    """Only the last value was taken: ?status=queued&status=failed answered the failed jobs alone,
    as if the list took either."""
    from jobs.services import job_submit

    job_submit(team=acme, handler="pulse.noop", payload={}, source="api")
    name = url.split("?")[1].split("&")[-1].split("=")[0]
    response = alice_client.get(url)
    assert response.status_code == 400
    assert error(response) == {"code": "validation_error", "message": f"{name}: Give it once.",
                               "fields": {name: ["Give it once."]}}


def test_the_schema_lists_the_refusals_every_operation_can_answer(alice_client):
    """Every operation refuses a query parameter it does not take (400) and an Accept it cannot
    answer (406), and every one that reads a body one too large (413) or not JSON (415); the
    schema listed them for some operations only, so a generated client met undocumented answers."""
    schema = alice_client.get("/api/schema/", {"format": "json"}).json()
    missing = [(method, path, code) for path, operations in schema["paths"].items()
               for method, operation in operations.items()
               for code in (("400", "406") if method == "get" else ("400", "406", "413", "415"))
               if code not in operation["responses"]]
    assert missing == []
    answered = alice_client.get("/api/v1/team/?bogus=1")
    assert answered.status_code == 400 and "400" in schema["paths"]["/api/v1/team/"]["get"]["responses"]
    assert schema["paths"]["/api/v1/team/"]["get"]["responses"]["406"]["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def test_the_schema_gives_the_values_a_body_field_takes_where_the_service_checks_them(alice_client):
    """These fields are passed to their service as sent (it refuses a bad one by name, with every
    other bad field at once); the schema said "any string" or "any JSON", so a client generated
    from it could not know that access is read or write, or that a limit is a decimal string."""
    schemas = alice_client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]

    def enum(component: str, field: str) -> list[str]:
        ref = schemas[component]["properties"][field]["allOf"][0]["$ref"]
        return schemas[ref.rsplit("/", 1)[1]]["enum"]

    assert enum("TokenCreateInRequest", "access") == ["read", "write"]
    assert enum("MemberCreateInRequest", "role") == enum("PatchedMemberChangeInRequest", "role") == [
        "owner", "admin", "member", "viewer"]
    assert (enum("ScheduleInRequest", "overlap_policy"), enum("ScheduleInRequest", "misfire_policy")) == (
        ["skip", "queue", "allow"], ["skip", "once", "all"])
    assert enum("PatchedPolicyInRequest", "over_budget") == ["hold", "fail"]
    budget = schemas["PatchedPolicyInRequest"]["properties"]
    assert (budget["daily_limit"]["type"], budget["daily_limit"]["nullable"]) == ("string", True)
    assert (budget["max_concurrent"]["type"], budget["week_start"]["maximum"]) == ("integer", 6)


def test_a_value_outside_the_documented_ones_is_still_the_services_refusal(alice_client):
    response = alice_client.post("/api/v1/tokens/", {"name": "ci", "access": "admin"}, content_type="application/json")
    assert response.status_code == 400
    assert error(response)["fields"] == {"access": ["Choose 'read' or 'write'."]}


def test_a_blank_query_parameter_is_as_if_not_given_and_format_is_drfs_own(alice_client, acme):
    from jobs.services import job_submit

    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    response = alice_client.get("/api/v1/jobs/?status=&created_after=&limit=&format=json")
    assert response.status_code == 200
    assert [j["id"] for j in response.json()["results"]] == [job.public_id]


def test_the_schema_says_a_choice_parameter_may_be_blank_as_the_api_takes_it(alice_client):
    """`?status=` is taken as not given, but the schema's enum left blank out: schemathesis read
    the 200 as a schema-violating request accepted."""
    paths = alice_client.get("/api/schema/", {"format": "json"}).json()["paths"]
    status = next(p for p in paths["/api/v1/jobs/"]["get"]["parameters"] if p["name"] == "status")
    family = next(p for p in paths["/api/v1/events/"]["get"]["parameters"] if p["name"] == "family")
    assert "" in status["schema"]["enum"] and "" in family["schema"]["enum"]
    assert alice_client.get("/api/v1/events/?family=").status_code == 200


def test_the_schema_says_every_query_parameter_may_be_blank_as_the_api_takes_it(alice_client):
    """`?created_before=` and `?limit=` are taken as not given (README), which a date-time's or an
    integer's schema cannot say: OpenAPI's allowEmptyValue does."""
    paths = alice_client.get("/api/schema/", {"format": "json"}).json()["paths"]
    query = [(path, parameter["name"], parameter.get("allowEmptyValue")) for path, operations in paths.items()
             for operation in operations.values() for parameter in operation.get("parameters", [])
             if parameter["in"] == "query"]
    assert len(query) >= 30
    assert [(path, name) for path, name, blank in query if blank is not True] == []
    assert alice_client.get("/api/v1/jobs/?created_before=&limit=").status_code == 200


@pytest.mark.parametrize("url", ["/api/v1/jobs/?format=xml", "/api/v1/team/?format=api",
                                 "/api/v1/budget/usage/?format=yaml"])
def test_a_format_the_api_does_not_answer_in_is_refused_by_name(alice_client, url):
    """It was DRF's bare 404 "Not found.", as if the URL were wrong rather than a parameter."""
    response = alice_client.get(url)
    assert response.status_code == 400
    assert error(response) == {"code": "validation_error", "message": "format: Choose one of json.",
                               "fields": {"format": ["Choose one of json."]}}


def test_a_token_sent_with_drfs_token_scheme_is_told_to_use_bearer(acme):
    from rest_framework.test import APIClient

    from pulse_site.teams.services import token_create

    _, secret = token_create(team=acme, name="ci", access="read", expires_at=None, by=None)
    client = APIClient()

    response = client.get("/api/v1/team/", HTTP_AUTHORIZATION=f"Token {secret}")

    assert response.status_code == 401
    assert error(response) == {"code": "authentication_failed",
                               "message": "Pulse's tokens go as 'Authorization: Bearer <token>', not 'Token'.", "fields": {}}
    assert client.get("/api/v1/team/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200


def test_too_many_query_parameters_are_refused_saying_so(acme_api, settings):
    """It was "The request could not be read.", which told a client nothing it could change."""
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    response = acme_api.get("/api/v1/jobs/?" + "&".join(f"x{i}=1" for i in range(11)))
    assert response.status_code == 400
    assert error(response) == {"code": "bad_request", "fields": {},
                               "message": "More than 10 query parameters or form fields."}


@pytest.mark.parametrize("method, url", [
    ("put", "/api/v1/team/"),                  # a token may not PATCH the team: it was that 403
    ("trace", "/api/v1/stats/?hours=1"),       # its GET's parameter, unknown to TRACE: it was a 400
    ("put", "/api/v1/jobs/?status=queued"),
    ("delete", "/api/v1/budget/?bogus=1"),
])
def test_a_method_the_url_does_not_take_is_a_405_before_its_permissions_or_parameters(acme_api, method, url):
    response = acme_api.generic(method.upper(), url)
    assert response.status_code == 405
    assert error(response)["code"] == "method_not_allowed"
    assert method.upper() not in response["Allow"]
