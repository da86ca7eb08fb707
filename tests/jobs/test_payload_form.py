"""A handler's payload as form inputs (jobs/payload_form.py), shared by the new-job and schedule forms:
what they can give back as it was, and how a service's refusal finds its input."""

from __future__ import annotations

import pytest

from jobs.handlers.registry import get_handler
from jobs.payload_form import PayloadForm
from pulse_site.errors import ValidationError

KINDS = {"type": "object", "required": ["r"], "properties": {
    "n": {"type": "integer"}, "x": {"type": "number"}, "s": {"type": "string"}, "r": {"type": "string"},
    "e": {"enum": ["a", "b"]}, "b": {"type": "boolean"}, "o": {"type": "object"}, "any": {}}}


@pytest.fixture
def kinds(temp_handler):
    temp_handler("test.kinds", schema=KINDS)(lambda ctx: None)
    return get_handler("test.kinds")


def sent_back(form: PayloadForm) -> dict[str, str]:
    """What a browser sends for the unbound form's inputs as they are shown."""
    return {name: "" if form[name].value() is None else str(form[name].value()) for name in form.fields}


@pytest.mark.parametrize("default_filled", [True, False])
def test_a_payload_shown_in_the_inputs_and_sent_back_unchanged_is_the_same_payload(kinds, default_filled):
    payload = {"n": 3, "x": 1.5, "s": "text", "r": "t", "e": "b", "b": False, "o": {"k": [1]}, "any": "v"}
    form = PayloadForm(kinds, default_filled=default_filled)
    assert form.not_carried(payload) == [] and form.fill_payload(payload) == []
    again = PayloadForm(kinds, sent_back(form), default_filled=default_filled)
    assert again.is_valid(), again.errors
    assert again.payload() == payload


def test_the_keys_the_inputs_would_change_or_drop_are_named(kinds):
    form = PayloadForm(kinds)
    payload = {"n": 1.5, "x": True, "s": "", "r": "", "e": "c", "b": None, "o": None, "any": "kept", "extra": 1}
    assert form.not_carried(payload) == ["b", "e", "extra", "n", "o", "r", "s", "x"]
    assert form.fill_payload({"r": "kept", "extra": 1}) == ["extra"]  # left out of the inputs
    assert PayloadForm(kinds, as_json=True).not_carried(payload) == []  # the JSON box carries anything


def test_a_refusal_inside_a_field_lands_on_its_input_or_on_the_json_box(kinds):
    refusal = ValidationError("Refused.", fields={"payload.o.k": ["Required."], "payload.n": ["Too small."]})
    form = PayloadForm(kinds, {**{name: "" for name in PayloadForm(kinds).fields}, "payload.r": "x"})
    assert form.is_valid()
    assert form.add_service_error(refusal) is True
    assert form.errors == {"payload.o": ["k: Required."], "payload.n": ["Too small."]}
    assert form.add_service_error(ValidationError("Refused.", fields={"cron": ["Bad."]})) is False
    box = PayloadForm(kinds, {"payload": "{}"})
    assert box.as_json and box.is_valid()
    box.add_service_error(refusal)
    assert box.errors == {"payload": ["o.k: Required.", "n: Too small."]}


def test_a_bound_form_takes_the_json_box_when_it_was_sent():
    sleep = get_handler("pulse.sleep")
    assert PayloadForm(sleep).keys == ["steps", "seconds"]
    typed = PayloadForm(sleep, {"payload": '{"steps": 2}'})
    assert typed.as_json and typed.is_valid() and typed.payload() == {"steps": 2}
