from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from budgets.money import money_str
from jobs.models import Attempt, Job, TaskLog
from jobs.services import job_cancel, job_pause, job_resume, job_retry
from pulse_site.errors import PulseError


def _bulk(service, label: str):  # type: ignore[no-untyped-def]
    """An admin action that calls the same service as the dashboard and the API, job by job."""

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done, refused = 0, []
        for job in queryset.order_by("pk"):
            try:
                service(job=job, by=f"admin {request.user.get_username()}")
                done += 1
            except PulseError as exc:
                refused.append(f"{job.public_id}: {exc.message}")
        modeladmin.message_user(request, f"{label}: {done} job(s).", messages.SUCCESS)
        for line in refused[:20]:
            modeladmin.message_user(request, line, messages.WARNING)

    action.short_description = f"{label} selected jobs"  # type: ignore[attr-defined]
    action.__name__ = f"action_{label.lower()}"
    return action


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = ["number", "worker", "started_at", "finished_at", "outcome", "error_code", "error_message", "cost"]
    readonly_fields = fields


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["public_id", "team", "handler", "status", "source", "progress", "estimate", "actual", "attempts",
                    "error_code", "created_at"]
    list_filter = ["status", "source", "handler", "error_code", "team"]
    search_fields = ["public_id", "handler", "idempotency_key", "team__name", "team__slug"]
    list_select_related = ["team"]
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [AttemptInline]
    actions = [_bulk(job_cancel, "Cancel"), _bulk(job_retry, "Retry"), _bulk(job_pause, "Pause"),
               _bulk(job_resume, "Resume")]
    show_full_result_count = False  # no COUNT(*) over millions of rows per page view

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are submitted through the submit service (dashboard, API, schedules)

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        return f"{job.progress_current}/{job.progress_total}" if job.progress_total else str(job.progress_current)

    @admin.display(description="estimate")
    def estimate(self, job: Job) -> str | None:
        return money_str(job.cost_estimate)

    @admin.display(description="actual")
    def actual(self, job: Job) -> str | None:
        return money_str(job.cost_actual)


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = ["job", "number", "worker", "outcome", "error_code", "started_at", "finished_at"]
    list_filter = ["outcome", "error_code"]
    search_fields = ["job__public_id", "worker"]
    list_select_related = ["job"]
    readonly_fields = [f.name for f in Attempt._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(TaskLog)
class TaskLogAdmin(admin.ModelAdmin):
    list_display = ["job", "attempt", "stage", "task", "level", "message", "created_at"]
    list_filter = ["level", "stage"]
    search_fields = ["job__public_id", "message"]
    list_select_related = ["job"]
    readonly_fields = [f.name for f in TaskLog._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
