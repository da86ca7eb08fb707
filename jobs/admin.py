from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django_q.models import Schedule as QSchedule

from budgets.money import money_text
from jobs.error_codes import ErrorCode
from jobs.handlers.registry import registered_handlers
from jobs.models import Attempt, Job, QueuePause, TaskLog
from jobs.pausing import queue_pause, queue_pause_validate, queue_resume
from jobs.services import job_cancel, job_delete, job_pause, job_resume, job_retry
from pulse_site.admin_actions import action_logged, operator_name, service_action
from pulse_site.admin_lists import LargeTableAdmin, choices_filter
from pulse_site.errors import PulseError


# django-q2's own schedules never run here (Q_CLUSTER's scheduler is off: Pulse's ticker runs
# the teams' schedules), so its admin page for them would take schedules that silently never fire.
admin.site.unregister(QSchedule)


def _bulk(service, label: str):
    return service_action(service, label, arg="job", noun="jobs")


HandlerFilter = choices_filter("handler", "handler", lambda: [(spec.name, spec.name) for spec in
                                                            registered_handlers(internal=True)])


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "worker", "started_at", "finished_at", "outcome", "error_code",
                                "error_message", "cost")


@admin.register(Job)
class JobAdmin(LargeTableAdmin):
    list_display = ["public_id", "team", "handler", "status", "source", "progress", "estimate", "actual", "attempts",
                    "error_code", "created_at"]
    list_filter = ["status", "source", HandlerFilter, "error_code", "team"]
    search_fields = ["public_id", "handler", "idempotency_key", "team__name", "team__slug"]
    list_select_related = ["team"]
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [AttemptInline]
    actions = [_bulk(job_cancel, "Cancel"), _bulk(job_retry, "Retry"), _bulk(job_pause, "Pause"),
               _bulk(job_resume, "Resume"), _bulk(job_delete, "Delete finished")]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are submitted through the submit service (dashboard, API, schedules)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Through job_delete only ("Delete finished" above): a raw delete of a running job kept its
        # budget reservation and running slot, and wrote no job.deleted event.
        return False

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        return f"{job.progress_current}/{job.progress_total}" if job.progress_total else str(job.progress_current)

    @admin.display(description="estimate")
    def estimate(self, job: Job) -> str | None:
        return money_text(job.cost_estimate)

    @admin.display(description="actual")
    def actual(self, job: Job) -> str | None:
        return money_text(job.cost_actual)


@admin.register(Attempt)
class AttemptAdmin(LargeTableAdmin):
    list_display = ["job", "number", "worker", "outcome", "error_code", "started_at", "finished_at"]
    list_filter = ["outcome", choices_filter("error_code", "error code", ErrorCode.choices)]
    search_fields = ["job__public_id", "worker"]
    list_select_related = ["job"]
    readonly_fields = [f.name for f in Attempt._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(TaskLog)
class TaskLogAdmin(LargeTableAdmin):
    list_display = ["job", "attempt", "stage", "task", "level", "message", "created_at"]
    list_filter = ["level"]  # a stage is free text: searched, not listed (a DISTINCT over every line)
    search_fields = ["job__public_id", "message"]
    list_select_related = ["job"]
    readonly_fields = [f.name for f in TaskLog._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class QueuePauseForm(forms.ModelForm):
    class Meta:
        model = QueuePause
        fields = ["scope", "team", "handler", "reason"]

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if self.instance.pk is None and "scope" in data:
            # The service's checks, each on its field (they read "Constraint … is violated"), and
            # its dropping of a team or handler that is not the scope's.
            try:
                data["team"], data["handler"], data["reason"] = queue_pause_validate(
                    scope=data["scope"], reason=data.get("reason") or "", team=data.get("team"),
                    handler=data.get("handler") or "")
            except PulseError as exc:
                for field, reasons in exc.fields.items():
                    if field not in self.errors:
                        for reason in reasons:
                            self.add_error(field if field in self.fields else None, reason)
        if self.instance.pk is None and not self.errors:
            # The "one pause in force" constraints mention ended_at, which is not on the form, so
            # Django skips them here: ask the question the service's unique keys will.
            scope, team, handler = data.get("scope"), data.get("team"), (data.get("handler") or "").strip()
            live = QueuePause.objects.filter(ended_at__isnull=True, scope=scope)
            if (scope == "global" and live.exists()) or (scope == "team" and live.filter(team=team).exists()) \
                    or (scope == "handler" and live.filter(handler=handler).exists()):
                raise forms.ValidationError("This queue is already paused; resume that pause first.")
        return data


@admin.register(QueuePause)
class QueuePauseAdmin(admin.ModelAdmin):
    """Operators pause one team, one handler everywhere, or every team; through the same
    services as the team's own pause button, so held jobs are released on resume."""

    list_display = ["public_id", "scope", "team", "handler", "paused_by", "reason", "created_at", "ended_at", "ended_by"]
    list_filter = ["scope", ("ended_at", admin.EmptyFieldListFilter)]
    search_fields = ["public_id", "handler", "reason", "paused_by", "team__name"]
    form = QueuePauseForm
    fields = PAUSE_FIELDS = ("scope", "team", "handler", "reason")
    actions = ["resume_selected"]

    def get_readonly_fields(self, request: HttpRequest, obj: QueuePause | None = None) -> list[str]:
        # A pause is never edited: it is resumed, and a new one is made.
        return list(self.PAUSE_FIELDS) if obj is not None else []

    def save_model(self, request: HttpRequest, obj: QueuePause, form: object, change: bool) -> None:
        if change:
            return
        # The form has already checked the model's constraints (scope fields, one pause in force
        # per target), so the service's refusals cannot reach here but for a race.
        saved = queue_pause(scope=obj.scope, team=obj.team, handler=obj.handler, reason=obj.reason,
                            by=operator_name(request))
        obj.pk, obj.public_id, obj.paused_by, obj.created_at = saved.pk, saved.public_id, saved.paused_by, saved.created_at

    @admin.action(description="Resume selected pauses (release their held jobs)", permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[QueuePause]) -> None:
        done = 0
        for pause in queryset.filter(ended_at__isnull=True).order_by("pk"):
            try:
                queue_resume(pause=pause, by=operator_name(request))
                done += 1
                action_logged(self, request, pause, "Resumed")
            except PulseError as exc:
                self.message_user(request, f"{pause.public_id}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Resumed {done} pause(s).", messages.SUCCESS)
