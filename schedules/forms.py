"""Dashboard forms for schedules: they parse what was typed; every rule lives in the services."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from jobs.payload_form import JsonField
from jobs.handlers.registry import registered_handlers
from pulse_site.errors import PulseError
from pulse_site.zones import zone_names
from schedules.models import Schedule


class PayloadField(JsonField):
    """A JSON object; blank is the empty one."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 50, "spellcheck": "false"})

    def blank(self) -> Any:
        return {}

    def prepare_value(self, value: Any) -> Any:
        return value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)


class ScheduleFilterForm(forms.Form):
    """The schedules list's query: a name part, a handler and the page to carry on from, with the
    limits the API's ScheduleListQuery puts on them."""

    name = forms.CharField(required=False, max_length=100)
    handler = forms.CharField(required=False, max_length=100)
    cursor = forms.CharField(required=False, max_length=29)


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "cols": 50}))
    handler = forms.ChoiceField()
    payload = PayloadField(required=False, initial="{}", label="Payload (JSON object)",
                           help_text="Checked against the handler's schema when you save.")
    cron = forms.CharField(max_length=200, label="Cron expression", strip=True,
                           help_text="Five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, "
                                     "@weekly, @monthly, @yearly.",
                           widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    time_zone = forms.ChoiceField(label="Time zone")
    enabled = forms.BooleanField(required=False, initial=True)
    overlap_policy = forms.ChoiceField(choices=Schedule.Overlap.choices, initial=Schedule.Overlap.SKIP,
                                       label="While the last run is unfinished")
    misfire_policy = forms.ChoiceField(choices=Schedule.Misfire.choices, initial=Schedule.Misfire.ONCE,
                                       label="After downtime")
    estimate_override = forms.CharField(required=False, max_length=30, label="Estimate override",
                                        help_text="Cost per run, e.g. 0.25; empty: the handler's own estimate.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["handler"].choices = [(h.name, f"{h.name} — {h.title}") for h in registered_handlers()]  # type: ignore[attr-defined]
        self.fields["time_zone"].choices = [(z, z) for z in sorted(zone_names())]  # type: ignore[attr-defined]

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["estimate_override"] = data.get("estimate_override") or None
        return data

    def add_service_error(self, error: PulseError) -> None:
        """Attach the service's field errors; `payload.x` lands on the payload box, named."""
        for field, reasons in error.fields.items():
            name = "payload" if field.startswith("payload.") else field
            for reason in reasons:
                text = f"{field[len('payload.'):]}: {reason}" if name != field else reason
                self.add_error(name if name in self.fields else None, text)
        if not error.fields:
            self.add_error(None, error.message)


def schedule_initial(schedule: Schedule) -> dict[str, Any]:
    from budgets.money import money_str

    return {
        "name": schedule.name, "description": schedule.description, "handler": schedule.handler,
        "payload": schedule.payload, "cron": schedule.cron, "time_zone": schedule.time_zone,
        "enabled": schedule.enabled, "overlap_policy": schedule.overlap_policy,
        "misfire_policy": schedule.misfire_policy, "estimate_override": money_str(schedule.estimate_override) or "",
    }
