"""A handler's payload as form inputs, for every dashboard form that asks for one (a new job, a
schedule): one input per property of its schema, or one JSON box where inputs cannot carry it."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from django import forms

from jobs.handlers.registry import Handler, PayloadField
from jobs.services import payload_validate
from pulse_site.errors import PulseError
from pulse_site.parsers import Refused, json_loads_strict

PAYLOAD_PREFIX = "payload."
JSON_BOX = "payload"


class JsonField(forms.CharField):
    """Any JSON value; blank means 'not given' so the handler's default applies."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 50, "spellcheck": "false"})

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if text is None or text in self.empty_values:
            return self.blank()
        try:
            return json_loads_strict(text)
        except Refused as exc:
            raise forms.ValidationError(exc.reason) from None
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from None

    def blank(self) -> Any:
        return None


_WHOLE = re.compile(r"[+-]?\d+")


class NumberField(forms.FloatField):
    """A schema's "number": a whole number typed is kept whole (20, not 20.0), as the API keeps
    it, so the payload and a refusal ("0 is less than …") say back what was typed."""

    # django-stubs type FloatField.to_python as IntegerField's (int | None): it returns a float.
    def to_python(self, value: Any) -> int | float | None:  # type: ignore[override]
        number: float | None = super().to_python(value)
        text = str(value).strip()
        return int(text) if number is not None and _WHOLE.fullmatch(text) else number


class PayloadJsonField(JsonField):
    """The whole payload as one JSON object; blank is the empty one."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 50, "spellcheck": "false"})

    def blank(self) -> Any:
        return {}

    def prepare_value(self, value: Any) -> Any:
        return value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _blank(choices: list[tuple[str, str]], label: str) -> list[tuple[str, str]]:
    return [("", label), *choices]


def _field_for(prop: dict[str, Any], required: bool, *, default_filled: bool) -> forms.Field:
    kind = prop.get("type")
    default = prop.get("default") if default_filled else None
    help_text = prop.get("description", "")
    common: dict[str, Any] = {"required": required, "help_text": help_text}
    enum = prop.get("enum")
    # Range and length checks stay with the handler's schema, so the form and the API refuse
    # the same values with the same words.
    if isinstance(enum, list) and all(isinstance(v, str) for v in enum):
        choices = [(v, v) for v in enum]
        return forms.ChoiceField(choices=choices if required else _blank(choices, "—"), initial=default, **common)
    if kind == "integer":
        return forms.IntegerField(initial=default, **common)
    if kind == "number":
        return NumberField(initial=default, **common)
    if kind == "string":
        return forms.CharField(initial=default, strip=False, **common)
    if kind == "boolean":
        # Three states: an optional flag left unset is not the same as false.
        return forms.NullBooleanField(initial=default, required=False, help_text=help_text)
    return JsonField(initial=None if default is None else json.dumps(default), **common)


def _carries(field: forms.Field, value: Any) -> bool:
    """Whether `value`, shown in `field` and sent back unchanged, comes back as the same value."""
    if value is None or isinstance(field, JsonField):
        return value is not None  # a JSON null would read as 'not given'
    if isinstance(field, forms.NullBooleanField):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if isinstance(field, forms.ChoiceField):
        return isinstance(value, str) and value != "" and field.valid_value(value)
    if isinstance(field, forms.FloatField):  # before IntegerField: Django's FloatField is one
        return isinstance(value, (int, float))
    if isinstance(field, forms.IntegerField):
        return isinstance(value, int)
    # Empty text is read as not given: left out of the payload, or refused where required.
    return isinstance(value, str) and value != ""


class PayloadForm(forms.Form):
    """A handler's payload: an input per property of its JSON Schema, named `payload.<key>` (the
    names the services give their field errors, so each lands next to its input), a property
    that is an object, an array or of no one type taking JSON; or one JSON box, `payload`, for a
    schema without properties or when `as_json` (a bound form is `as_json` when the box was sent).

    `default_filled`: a property's schema default is put in its input (a job is submitted with
    it anyway); else it is named in the help text and the input is left empty, so that what is
    kept is what was typed (a schedule's runs each get the defaults deployed when they run).
    Subclasses put the payload's inputs after the field named `payload_after` (None: first)."""

    payload_after: ClassVar[str | None] = None
    aliases: ClassVar[dict[str, str]] = {}  # a service's name for a field → this form's input

    def __init__(self, handler: Handler, *args: Any, as_json: bool = False, default_filled: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handler = handler
        if self.is_bound and JSON_BOX in self.data:
            as_json = True
        described = [] if as_json else handler.payload_fields()
        props = handler.schema.get("properties")
        inputs: dict[str, forms.Field] = {}
        for one in described:
            prop = props[one.key] if isinstance(props, dict) and isinstance(props[one.key], dict) else {}
            inputs[PAYLOAD_PREFIX + one.key] = _input(one, prop, default_filled=default_filled)
        if not inputs:
            inputs[JSON_BOX] = PayloadJsonField(required=False, initial="{}", label="Payload (JSON object)")
        self.keys: list[str] = [one.key for one in described]
        names = list(self.fields)
        at = names.index(self.payload_after) + 1 if self.payload_after in names else 0
        self.fields = {**{name: self.fields[name] for name in names[:at]}, **inputs,
                       **{name: self.fields[name] for name in names[at:]}}

    @property
    def as_json(self) -> bool:
        return not self.keys

    def payload_inputs(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name == JSON_BOX or name.startswith(PAYLOAD_PREFIX)]

    def payload(self) -> Any:
        """The payload as typed; unset optional fields are left out so the handler's defaults apply."""
        if self.as_json:
            value = self.cleaned_data.get(JSON_BOX)
            return {} if value is None else value
        body: dict[str, Any] = {}
        for key in self.keys:
            value = self.cleaned_data.get(PAYLOAD_PREFIX + key)
            if value is None or (value == "" and not self.fields[PAYLOAD_PREFIX + key].required):
                continue
            body[key] = value
        return body

    def fill_payload(self, payload: Any) -> list[str]:
        """Show `payload` in the unbound form's inputs. Returns the keys it has no input for, which
        are left out."""
        body = payload if isinstance(payload, dict) else {}
        if self.as_json:
            self.initial[JSON_BOX] = body
            return []
        for key, value in body.items():
            name = PAYLOAD_PREFIX + key
            if key in self.keys:
                self.initial[name] = json.dumps(value) if isinstance(self.fields[name], JsonField) else value
        return sorted(set(body) - set(self.keys))

    def not_carried(self, payload: Any) -> list[str]:
        """The keys of `payload` the inputs cannot give back as they are (none of them is its key,
        or its value would come back changed or left out); [] when they carry it all."""
        if self.as_json or not isinstance(payload, dict):
            return []
        return sorted(key for key, value in payload.items()
                      if key not in self.keys or not _carries(self.fields[PAYLOAD_PREFIX + key], value))

    def full_clean(self) -> None:
        super().full_clean()
        # The services check the payload against the handler's schema, but only a form with no
        # other error reaches them: one refused for its priority or zone says now what is wrong
        # with the payload too, rather than once that is fixed and the form sent again.
        if not self.errors:
            return
        unrefused = {field.name for field in self.payload_inputs() if field.name not in self.errors}
        if not unrefused or JSON_BOX in self.errors:
            return
        try:
            payload_validate(spec=self.handler, payload=self.payload())
        except PulseError as exc:
            for field, reasons in exc.fields.items():
                for name, reason in (self._input_for(field, reason) for reason in reasons):
                    if name in unrefused:
                        self.add_error(name, reason)

    def add_service_error(self, error: PulseError) -> bool:
        """Attach a service's refusal to the inputs it names; False when it names none of them.
        An error inside a field's value (`payload.options.format`) goes under that field's input
        (`payload.options`) with the rest of its path ("format: Required.")."""
        placed = [self._input_for(field, reason) for field, reasons in error.fields.items() for reason in reasons]
        if not any(name for name, _ in placed):
            return False
        for name, reason in placed:
            self.add_error(name, reason)
        return True

    def _input_for(self, field: str, reason: str) -> tuple[str | None, str]:
        field = self.aliases.get(field, field)
        if field in self.fields:
            return field, reason
        if field.startswith(PAYLOAD_PREFIX):
            key, _, rest = field[len(PAYLOAD_PREFIX):].partition(".")
            if PAYLOAD_PREFIX + key in self.fields:
                return PAYLOAD_PREFIX + key, f"{rest}: {reason}" if rest else reason
            if JSON_BOX in self.fields:
                return JSON_BOX, f"{field[len(PAYLOAD_PREFIX):]}: {reason}"
        return None, f"{field}: {reason}"


def _input(described: PayloadField, prop: dict[str, Any], *, default_filled: bool) -> forms.Field:
    field = _field_for(prop, described.required, default_filled=default_filled)
    field.label = described.key
    # The schema's rules in words under the input (a select shows its choices itself).
    rules = "" if isinstance(field, forms.ChoiceField) else described.rules
    parts = [described.description, rules[:1].upper() + rules[1:]]
    if not default_filled and described.default is not None:
        parts.append(f"Empty: each run gets the handler's default, {described.default}")
    field.help_text = ". ".join(part for part in parts if part)
    return field
