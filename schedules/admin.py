from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Q
from django.http import HttpRequest

from budgets.money import money_str
from jobs.models import Job
from pulse_site.admin_actions import operator_name, service_action
from pulse_site.admin_lists import LargeTableAdmin, named, public_id_in, row_number
from pulse_site.errors import PulseError
from schedules.models import Execution, Schedule
from schedules.services import (
    EDITABLE,
    schedule_create,
    schedule_delete,
    schedule_pause,
    schedule_resume,
    schedule_trigger,
    schedule_update,
    schedule_validate,
)


def _bulk(service, label: str):
    return service_action(service, label, arg="schedule", noun="schedules")


_FORM_FIELD = {"estimate_override": "estimate"}


class ScheduleAdminForm(forms.ModelForm):
    """The admin edits through the schedule services: the same checks, field by field."""

    # Not the model's integer micro-units: money as people write it, parsed by the service.
    estimate = forms.CharField(required=False, label="Estimate override",
                               help_text="Money per run, e.g. 0.25; empty: the handler's.")

    class Meta:
        model = Schedule
        fields = ["team", "name", "description", "handler", "payload", "cron", "time_zone", "enabled",
                  "overlap_policy", "misfire_policy", "estimate"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["estimate"] = money_str(self.instance.estimate_override) or ""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        team = data.get("team") or (self.instance.team if self.instance.pk else None)
        if team is None:
            return data
        try:
            schedule_validate(team=team, values={**data, "estimate_override": data.get("estimate") or None})
        except PulseError as exc:
            for field, reasons in exc.fields.items():
                name = "payload" if field.startswith("payload.") else _FORM_FIELD.get(field, field)
                for reason in reasons:
                    self.add_error(name if name in self.fields else None, reason)
        return data


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleAdminForm
    list_display = ["public_id", "name", "team", "handler", "cron", "time_zone", "enabled", "next_run_at",
                    "last_run_at", "broken"]
    list_filter = ["enabled", "handler", "overlap_policy", "misfire_policy", "team"]
    search_fields = ["public_id", "name", "handler", "team__name", "team__slug"]
    search_help_text = "Part of a schedule's id, name or handler, or of its team's name or slug (a small table)."
    list_select_related = ["team"]
    readonly_fields = ["public_id", "next_run_at", "last_run_at", "broken_reason", "created_by", "created_at",
                       "updated_at"]
    actions = [_bulk(schedule_resume, "Enable"), _bulk(schedule_pause, "Disable"), _bulk(schedule_trigger, "Run now"),
               _bulk(schedule_delete, "Delete")]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Through schedule_delete only ("Delete" above): a raw delete left a staged run to fire
        # after the schedule was gone, and wrote no schedule.deleted event.
        return False

    @admin.display(boolean=True, description="healthy")
    def broken(self, schedule: Schedule) -> bool:
        return not schedule.broken_reason

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> list[str]:
        # A schedule stays in its team: moving it would move its history and jobs' meaning.
        return [*self.readonly_fields, "team"] if obj else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Schedule, form: forms.ModelForm, change: bool) -> None:
        who = operator_name(request)
        values: dict[str, Any] = {key: form.cleaned_data.get(key) for key in EDITABLE}
        values["estimate_override"] = form.cleaned_data.get("estimate") or None
        if change:
            saved = schedule_update(schedule=obj, changes=values, by=who)
        else:
            saved = schedule_create(team=form.cleaned_data["team"], created_by=who, **values)
        obj.pk = saved.pk
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if not k.startswith("_")})


@admin.register(Execution)
class ExecutionAdmin(LargeTableAdmin):
    list_display = ["public_id", "schedule", "team", "fire_time", "trigger", "execution_status", "job",
                    "duration_ms", "created_at"]
    list_filter = ["trigger", "outcome", "team"]
    search_help_text = ("A run's id (EX_…) or number finds that run; a schedule's id (SP_…) its runs; a job's id "
                        "(JB_…) the run that made it; a team's slug, or its start, the team's runs; else the start "
                        "of a schedule's name, or a handler's name, their schedules' runs.")
    list_select_related = ["schedule", "team", "job"]
    readonly_fields = [f.name for f in Execution._meta.fields]

    def search_word(self, word: str) -> Q | None:
        if run_id := public_id_in(word, "EX"):
            return Q(public_id=run_id)
        if schedule_id := public_id_in(word, "SP"):
            return Q(schedule__in=Schedule.objects.filter(public_id=schedule_id).values("pk"))
        if job_id := public_id_in(word, "JB"):
            return Q(job__in=Job.objects.filter(public_id=job_id).values("pk"))
        if (number := row_number(word)) is not None:
            return Q(pk=number)
        name = named(word)
        if name.teams:
            return Q(team__in=name.teams)
        # Schedules are few: their names are matched there, and the runs by schedule
        # (execution_schedule_id).
        schedules = Schedule.objects.filter(Q(name__istartswith=word) | Q(handler__in=name.handlers))
        ids = list(schedules.values_list("pk", flat=True))
        return Q(schedule__in=ids) if ids else None

    @admin.display(description="status")
    def execution_status(self, execution: Execution) -> str:
        return execution.status

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # executions are made by the tick and by run now
