from __future__ import annotations

from decimal import Decimal

import pytest

from jobs.models import Job
from jobs.services import PayloadTooLarge, job_submit
from pulse_site.errors import Conflict, ValidationError
from pulse_site.live.models import Event


def test_a_submitted_job_is_queued_with_the_handlers_policy(acme, submit):
    job = submit("demo.report", {"title": "Q3"})
    assert job.public_id.startswith("JB_")
    assert job.status == Job.Status.QUEUED
    assert job.max_attempts == 2 and job.timeout_seconds == 900
    # 7 tasks at 0.01 plus 0.05, in micro-units.
    assert job.cost_estimate == 120_000
    assert Event.objects.filter(team=acme, kind="job.created", subject=job.public_id).count() == 1


def test_an_unknown_handler_is_refused_naming_the_field(acme):
    with pytest.raises(ValidationError) as err:
        job_submit(team=acme, handler="nope", payload={}, source="api")
    assert err.value.fields == {"handler": ["Unknown handler 'nope'."]}
    assert not Job.objects.exists()


def test_an_invalid_payload_names_each_bad_field(acme):
    with pytest.raises(ValidationError) as err:
        job_submit(team=acme, handler="pulse.sleep", payload={"steps": 0, "seconds": "x"}, source="api")
    assert set(err.value.fields) == {"payload.steps", "payload.seconds"}
    assert not Job.objects.exists()


def test_a_payload_must_be_an_object(acme):
    with pytest.raises(ValidationError) as err:
        job_submit(team=acme, handler="pulse.noop", payload=[1, 2], source="api")
    assert err.value.fields == {"payload": ["The payload must be a JSON object."]}


def test_an_oversized_payload_is_refused(acme, settings):
    settings.PULSE_MAX_PAYLOAD_BYTES = 1024
    with pytest.raises(PayloadTooLarge):
        job_submit(team=acme, handler="pulse.noop", payload={"x": "a" * 2000}, source="api")
    assert not Job.objects.exists()


def test_a_priority_outside_the_range_is_refused(acme):
    with pytest.raises(ValidationError) as err:
        job_submit(team=acme, handler="pulse.noop", payload={}, source="api", priority=101)
    assert list(err.value.fields) == ["priority"]


def test_a_repeated_idempotency_key_returns_the_first_job(acme):
    first = job_submit(team=acme, handler="pulse.noop", payload={"a": 1}, source="api", idempotency_key="k1")
    again = job_submit(team=acme, handler="pulse.noop", payload={"a": 1}, source="api", idempotency_key="k1")
    assert first.created and not again.created
    assert again.job.pk == first.job.pk
    assert Job.objects.count() == 1


def test_the_same_key_with_another_body_is_a_conflict(acme):
    job_submit(team=acme, handler="pulse.noop", payload={"a": 1}, source="api", idempotency_key="k1")
    with pytest.raises(Conflict) as err:
        job_submit(team=acme, handler="pulse.noop", payload={"a": 2}, source="api", idempotency_key="k1")
    assert err.value.code == "idempotency_conflict"
    assert Job.objects.count() == 1


def test_idempotency_keys_are_per_team(acme, globex):
    a = job_submit(team=acme, handler="pulse.noop", payload={}, source="api", idempotency_key="same")
    g = job_submit(team=globex, handler="pulse.noop", payload={}, source="api", idempotency_key="same")
    assert a.job.pk != g.job.pk and g.created


def test_an_idempotency_key_expires_after_a_day(acme, time_machine):
    time_machine.move_to("2026-01-01 10:00Z", tick=False)
    first = job_submit(team=acme, handler="pulse.noop", payload={}, source="api", idempotency_key="k")
    time_machine.move_to("2026-01-02 10:00:01Z", tick=False)
    later = job_submit(team=acme, handler="pulse.noop", payload={"new": True}, source="api", idempotency_key="k")
    assert later.created and later.job.pk != first.job.pk


@pytest.mark.parametrize(("answer", "reason"), [
    (0.5, "answered 0.5, not an amount: Give the amount as a string (e.g. \"0.10\"), not a float."),
    (Decimal("NaN"), "answered Decimal('NaN'), not an amount: The amount must be a finite number."),
    (Decimal("-1"), "answered Decimal('-1'), not an amount: The amount cannot be negative."),
    (None, "answered None, not an amount: Give an amount as a string, e.g. \"1.50\"."),
])
def test_an_estimator_answering_junk_is_refused_as_the_handlers_fault_under_payload(acme_api, temp_handler, answer,
                                                                                    reason):
    """It was a 400 on `cost_estimate`, a field no request has, in words that did not say whose
    mistake it was."""
    temp_handler("test.junk_estimate", cost=lambda payload: answer)(lambda ctx: None)
    response = acme_api.post("/api/v1/jobs/", {"handler": "test.junk_estimate", "payload": {}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"payload": [f"The cost estimator of test.junk_estimate {reason}"]}
    assert not Job.objects.filter(handler="test.junk_estimate").exists()


NESTED = {"type": "object", "required": ["account", "options"], "additionalProperties": False,
          "properties": {"account": {"type": "string"},
                         "options": {"type": "object", "required": ["format"],
                                     "properties": {"format": {"enum": ["pdf", "csv"]}, "dpi": {"type": "integer"}}}}}


def test_a_missing_or_unexpected_field_is_named_itself_not_its_parent(acme_api, temp_handler):
    """jsonschema reports a missing required property and an unexpected one at the object holding
    it: the answer said only "payload" (or "payload.options"), with the name in the sentence."""
    temp_handler("test.nested", schema=NESTED)(lambda ctx: None)
    response = acme_api.post("/api/v1/jobs/", {"handler": "test.nested", "payload": {
        "options": {"dpi": "x"}, "extra": 1, "more": 2}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "payload.account": ["Required."],
        "payload.extra": ["Not a field of this handler's payload."],
        "payload.more": ["Not a field of this handler's payload."],
        "payload.options.dpi": ["'x' is not of type 'integer'"],
        "payload.options.format": ["Required."],
    }


def test_a_schemas_format_is_checked_at_submit(acme_api, temp_handler):
    """jsonschema checks `format` only when given a format checker, and Pulse gave none: the
    handler's page said "a email" while any text was accepted."""
    temp_handler("test.formats", schema={"type": "object", "properties": {
        "to": {"type": "string", "format": "email"}, "at": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"}}})(lambda ctx: None)
    response = acme_api.post("/api/v1/jobs/", {"handler": "test.formats", "payload": {
        "to": "nobody", "at": "yesterday", "day": "2026-02-30"}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "payload.at": ["'yesterday' is not a 'date-time'"],
        "payload.day": ["'2026-02-30' is not a 'date'"],
        "payload.to": ["'nobody' is not a 'email'"],
    }
    fine = acme_api.post("/api/v1/jobs/", {"handler": "test.formats", "payload": {
        "to": "a@example.com", "at": "2026-12-07T10:00:00Z", "day": "2026-02-28"}}, format="json")
    assert fine.status_code == 201


def test_an_estimator_that_raises_is_refused_naming_its_exception(acme_api, temp_handler):
    """A KeyError's text is only the key: the answer read "The cost estimator failed: 'pages'"."""
    temp_handler("test.keyed", cost=lambda payload: Decimal("0.01") * payload["pages"])(lambda ctx: None)
    response = acme_api.post("/api/v1/jobs/", {"handler": "test.keyed", "payload": {}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"payload": ["The cost estimator of test.keyed failed: KeyError: 'pages'"]}


def test_an_estimator_raising_an_exception_whose_str_raises_is_a_400_not_a_500(acme_api, acme, temp_handler):
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no words")

    def estimate(payload):
        raise Unprintable()

    temp_handler("test.unprintable_estimate", cost=estimate)(lambda ctx: None)
    response = acme_api.post("/api/v1/jobs/", {"handler": "test.unprintable_estimate", "payload": {}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "payload": ["The cost estimator of test.unprintable_estimate failed: Unprintable: (its str() raised RuntimeError)"]}
    assert not Job.objects.filter(team=acme).exists()


def test_a_choice_refused_lists_the_choices_as_they_are_written(acme):
    """pulse.fail's codes were listed as "ErrorCode.AI_ERROR, …" (the enum's repr), not as a client writes them."""
    from pulse_site.errors import ValidationError

    with pytest.raises(ValidationError) as refused:
        job_submit(team=acme, handler="pulse.fail", payload={"code": "rate_limited"}, source="api")
    [reason] = refused.value.fields["payload.code"]
    assert reason.startswith("'rate_limited' is not one of ['ai_error', 'database_error', ") and "ErrorCode" not in reason
