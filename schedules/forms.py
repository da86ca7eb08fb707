"""Dashboard forms for schedules: they parse what was typed; every rule lives in the services."""

from __future__ import annotations

from typing import Any

from django import forms

from jobs.handlers.registry import Handler
from jobs.payload_form import JSON_BOX, PayloadForm
from pulse_site.paging import MAX_CURSOR
from pulse_site.zones import zone_names
from schedules.models import Schedule
from schedules.services import EDITABLE


class ScheduleFilterForm(forms.Form):
    """The schedules list's query: a name part, a handler and the page to carry on from, with the
    limits the API's ScheduleListQuery puts on them."""

    name = forms.CharField(required=False, max_length=100)
    handler = forms.CharField(required=False, max_length=100)
    cursor = forms.CharField(required=False, max_length=MAX_CURSOR)


class ScheduleForm(PayloadForm):
    """A schedule of one handler (chosen before the form, as the new-job page chooses one): its
    payload's inputs are the new-job form's, each default named rather than filled in, since a
    schedule keeps its payload as written and each run gets the defaults deployed when it runs."""

    payload_after = "description"

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "cols": 50}))
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

    def __init__(self, handler: Handler, *args: Any, **kwargs: Any) -> None:
        super().__init__(handler, *args, default_filled=False, **kwargs)
        # The handler chosen above the form, sent back with it (the job page's way).
        self.fields["handler"] = forms.CharField(widget=forms.HiddenInput, initial=handler.name)
        self.fields["time_zone"].choices = [(z, z) for z in sorted(zone_names())]  # type: ignore[attr-defined]
        if self.as_json:
            self.fields[JSON_BOX].help_text = "Checked against the handler's schema when you save."

    def values(self) -> dict[str, Any]:
        """What schedule_create and schedule_update are given."""
        data = {key: value for key, value in self.cleaned_data.items() if key in EDITABLE}
        data["handler"] = self.handler.name
        data["payload"] = self.payload()
        data["estimate_override"] = data.get("estimate_override") or None
        return data

    def settings_inputs(self) -> list[forms.BoundField]:
        """The schedule's own inputs after its payload's: when it runs and how."""
        return [self[name] for name in ("cron", "time_zone", "enabled", "overlap_policy", "misfire_policy",
                                        "estimate_override")]


def schedule_form_for(schedule: Schedule, handler: Handler) -> tuple[ScheduleForm, list[str]]:
    """The edit form of `schedule` with `handler` (its own, or another one chosen, whose inputs
    start empty), and the payload keys its inputs cannot carry as written. Those are not dropped:
    the payload is then edited as JSON, all of it."""
    initial = schedule_initial(schedule)
    form = ScheduleForm(handler, initial=initial)
    if handler.name != schedule.handler:
        return form, []
    kept_apart = form.not_carried(schedule.payload)
    if kept_apart:
        form = ScheduleForm(handler, initial=initial, as_json=True)
    form.fill_payload(schedule.payload)
    return form, kept_apart


def schedule_initial(schedule: Schedule) -> dict[str, Any]:
    from budgets.money import money_str

    return {
        "name": schedule.name, "description": schedule.description, "cron": schedule.cron,
        "time_zone": schedule.time_zone, "enabled": schedule.enabled, "overlap_policy": schedule.overlap_policy,
        "misfire_policy": schedule.misfire_policy, "estimate_override": money_str(schedule.estimate_override) or "",
    }
