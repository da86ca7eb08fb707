"""Hostile payloads through the API: refused with 400/413 in the error shape naming the field (never a
500), nothing partial stored; valid unicode of every kind comes back byte-exact."""

from __future__ import annotations

import json

import pytest

from budgets.models import BudgetPolicy
from jobs.models import Job
from schedules.models import Schedule

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/jobs/"
SCHEDULES = "/api/v1/schedules/"
BUDGET = "/api/v1/budget/"


def send(client, url: str, raw: str | bytes, method: str = "post"):
    client.raise_request_exception = False
    return getattr(client, method)(url, data=raw, content_type="application/json")


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def job_body(payload_json: str) -> str:
    return '{"handler": "pulse.noop", "payload": %s}' % payload_json


def schedule_body(**fields: str) -> str:
    values = {"name": '"Nightly"', "handler": '"pulse.noop"', "cron": '"0 3 * * *"', "time_zone": '"UTC"', **fields}
    return "{" + ", ".join(f'"{k}": {v}' for k, v in values.items()) + "}"


def assert_refused(response, statuses: tuple[int, ...], field: str | None) -> None:
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["code"] and error["message"]
    if field is not None:  # the field itself, or a value inside it ("payload.s")
        assert any(name == field or name.startswith(field + ".") for name in error["fields"]), error


HOSTILE_JOB_PAYLOADS = {
    "a number beyond a double": ('{"n": 1e400}', (400,)),
    "NaN": ('{"n": NaN}', (400,)),
    "Infinity": ('{"n": -Infinity}', (400,)),
    "a NUL character in a value": ('{"s": "a\\u0000b"}', (400,)),
    "a NUL character in a key": ('{"a\\u0000b": 1}', (400,)),
    "a lone high surrogate": ('{"s": "\\ud800"}', (400,)),
    "a lone low surrogate in a key": ('{"\\udc00": 1}', (400,)),
    "a 5 MB string": ('{"s": "%s"}' % ("x" * 5_000_000), (400, 413)),
    "just over the size limit": ('{"s": "%s"}' % ("x" * 256 * 1024), (413,)),
}


@pytest.mark.parametrize("case", HOSTILE_JOB_PAYLOADS, ids=list(HOSTILE_JOB_PAYLOADS))
def test_a_hostile_job_payload_is_refused_naming_the_field_and_nothing_is_stored(acme_api, case):
    raw, statuses = HOSTILE_JOB_PAYLOADS[case]
    big = len(raw) > 2_000_000  # past the request body limit the body cannot be parsed to find the field
    assert_refused(send(acme_api, JOBS, job_body(raw)), statuses, None if big else "payload")
    assert Job.objects.count() == 0


def test_ten_thousand_levels_of_nesting_are_refused_not_a_crash(acme_api):
    assert_refused(send(acme_api, JOBS, job_body(deep(10_000))), (400,), None)
    assert_refused(send(acme_api, SCHEDULES, schedule_body(payload=deep(10_000))), (400,), None)
    assert Job.objects.count() == 0 and Schedule.objects.count() == 0


def test_moderate_nesting_within_the_limit_is_accepted(acme_api):
    response = send(acme_api, JOBS, job_body('{"a": %s}' % deep(50)))
    assert response.status_code == 201
    assert Job.objects.get().payload == {"a": json.loads(deep(50))}


@pytest.mark.parametrize("field,value", [
    ("name", '"a\\u0000b"'), ("name", '"\\udfff"'), ("name", '"%s"' % ("n" * 5_000)),
    ("description", '"\\ud83d"'), ("cron", '"0 3 * * *\\u0000"'), ("time_zone", '"UTC\\u0000"'),
    ("payload", '{"k": "\\u0000"}'), ("payload", '{"k": 1e400}'),
])
def test_a_hostile_schedule_field_is_refused_at_create_and_at_edit_naming_it(acme_api, field, value):
    assert_refused(send(acme_api, SCHEDULES, schedule_body(**{field: value})), (400,), field)
    assert Schedule.objects.count() == 0
    created = send(acme_api, SCHEDULES, schedule_body())
    assert created.status_code == 201
    url = f"{SCHEDULES}{created.json()['id']}/"
    before = list(Schedule.objects.values())
    assert_refused(send(acme_api, url, "{\"%s\": %s}" % (field, value), method="patch"), (400,), field)
    assert list(Schedule.objects.values()) == before


@pytest.mark.parametrize("value,reason", [
    ('"-1"', "negative"), ('"0.0000001"', "finer than a micro-unit"), ('"1e400"', "beyond a double"),
    ('"NaN"', "not a number"), ('"Infinity"', "infinite"), ("1e400", "a bare huge number"),
    ('"1\\u0000"', "NUL"), ('"99999999999999999999999"', "beyond the counter's range"),
])
def test_hostile_money_in_the_budget_is_refused_naming_the_field(acme, alice_client, value, reason):
    before = list(BudgetPolicy.objects.filter(team=acme).values())
    response = send(alice_client, BUDGET, '{"daily_limit": %s}' % value, method="patch")
    assert_refused(response, (400,), "daily_limit")
    assert list(BudgetPolicy.objects.filter(team=acme).values()) == before


UNICODE = {
    "right-to-left": "שלום עולם مرحبا",
    "combining": "e\u0301 n\u0303 a\u030a\u0323 Z\u0351\u0352\u0353",
    "emoji and zero-width joiners": "👩\u200d👩\u200d👧 🏳\u200d🌈",
    "bidi controls": "\u202eabc\u202c \u2066x\u2069",
    "astral plane": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈",
}


def test_valid_unicode_comes_back_byte_exact_from_jobs_and_schedules(acme_api):
    payload = {name: text for name, text in UNICODE.items()} | {"נתונים": list(UNICODE.values())}
    job = send(acme_api, JOBS, json.dumps({"handler": "pulse.noop", "payload": payload}, ensure_ascii=False).encode())
    assert job.status_code == 201
    again = acme_api.get(f"{JOBS}{job.json()['id']}/").json()
    # Every string byte for byte; key order is not kept by PostgreSQL's JSONB, so keys are sorted.
    assert (json.dumps(again["payload"], ensure_ascii=False, sort_keys=True).encode()
            == json.dumps(payload, ensure_ascii=False, sort_keys=True).encode())
    name = UNICODE["right-to-left"] + " " + UNICODE["combining"]
    schedule = send(acme_api, SCHEDULES, json.dumps(
        {"name": name, "description": UNICODE["emoji and zero-width joiners"], "handler": "pulse.noop",
         "cron": "0 3 * * *", "time_zone": "UTC", "payload": payload}, ensure_ascii=False).encode())
    assert schedule.status_code == 201, schedule.content
    read = acme_api.get(f"{SCHEDULES}{schedule.json()['id']}/").json()
    assert read["name"].encode() == name.encode()
    assert read["description"].encode() == UNICODE["emoji and zero-width joiners"].encode()
    assert read["payload"] == payload


@pytest.mark.parametrize("payload", [deep(10_000), deep(100), '{"k": "\\u0000"}', '{"k": "\\ud800"}',
                                     '{"n": NaN}', '{"n": 1e400}'])
def test_the_dashboards_json_field_refuses_what_the_api_refuses(acme, alice_client, payload):
    response = alice_client.post("/schedules/new/", {
        "name": "Nightly", "handler": "pulse.noop", "cron": "0 3 * * *", "time_zone": "UTC", "payload": payload,
        "enabled": "on", "overlap_policy": "skip", "misfire_policy": "once", "estimate_override": ""})
    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["payload"]
    assert Schedule.objects.count() == 0
