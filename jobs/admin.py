from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django_q.models import Schedule as QSchedule

from budgets.money import money_text
from jobs.error_codes import ErrorCode
from jobs.handlers.registry import registered_handlers
from jobs.models import Attempt, Job, QueuePause, TaskLog
from jobs.pausing import queue_pause, queue_pause_validate, queue_resume
from jobs.services import job_cancel, job_delete, job_pause, job_resume, job_retry, job_start
from pulse_site.admin_actions import act_on_selected, operator_name, service_action
from pulse_site.admin_lists import LargeTableAdmin, choices_filter, every_team, named, public_id_in, row_number
from pulse_site.errors import PulseError
from pulse_site.teams.models import Team


# django-q2's own schedules never run here (Q_CLUSTER's scheduler is off: Pulse's ticker runs
# the teams' schedules), so its admin page for them would take schedules that silently never fire.
admin.site.unregister(QSchedule)


def _bulk(service, label: str):
    return service_action(service, label, arg="job", noun="jobs")


# job_team_handler_id, team by team: `handler = ?` alone read every job for a handler with few.
HandlerFilter = choices_filter("handler", "handler", lambda: [(spec.name, spec.name) for spec in
                                                            registered_handlers(internal=True)], team_by_team=True)

# job_team_source_id, team by team: a source no job came from read every job. Its address is
# Django's own, as before.
SourceFilter = choices_filter("source", "source", Job.Source.choices, team_by_team=True, parameter="source__exact")


class ErrorCodeFilter(admin.SimpleListFilter):
    """The codes the code knows (not a DISTINCT over the jobs), team by team in an index."""

    title = "error code"
    parameter_name = "error_code__exact"  # Django's own name for it before: addresses kept still filter

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(ErrorCode.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        code = self.value()
        if not code:
            return queryset
        # job_team_error_code_id, team by team, its condition said as the index says it.
        return queryset.filter(~Q(error_code=""), team__in=every_team(), error_code=code)


class AttemptCost:
    """An attempt's cost as people read it (the table's micro-units read 1250000 for 1.25)."""

    @admin.display(description="cost")
    def cost_money(self, attempt: Attempt) -> str | None:
        return money_text(attempt.cost)


class AttemptInline(AttemptCost, admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "worker", "started_at", "finished_at", "outcome", "error_code",
                                "error_message", "cost_money")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        # Each row is titled by its attempt's str, which names the job: read with it, not once a row.
        return super().get_queryset(request).select_related("job")


@admin.register(Job)
class JobAdmin(LargeTableAdmin):
    list_display = ["public_id", "team", "handler", "status", "source", "progress", "estimate", "actual", "attempts",
                    "error_code", "created_at"]
    list_filter = ["status", SourceFilter, HandlerFilter, ErrorCodeFilter, "team"]
    search_help_text = ("A job's id (JB_…) or number finds that job; a schedule's id (SP_…) the jobs it ran; a team's "
                        "slug, or its start, the team's jobs; a handler's name, or its start, its jobs. Words narrow "
                        "each other (acme reports.build). Nothing is matched inside a name or text.")
    list_select_related = ["team"]
    # Money as people read it, in place of the micro-units (the list's estimate and actual).
    fields = readonly_fields = tuple({"cost_estimate": "estimate", "cost_actual": "actual"}.get(f.name, f.name)
                                     for f in Job._meta.fields)
    inlines = [AttemptInline]
    # The job page's buttons (jobs.views.ACTIONS), and its delete.
    actions = [_bulk(job_cancel, "Cancel"), _bulk(job_retry, "Retry"), _bulk(job_pause, "Pause"),
               _bulk(job_resume, "Resume"), _bulk(job_start, "Start now"), _bulk(job_delete, "Delete finished")]
    # What a refused action on a long list says to do instead (admin_actions.act_on_selected).
    bulk_instead = ("; or cancel, retry or delete any number of one team's jobs with `manage.py pulse_jobs_bulk "
                    "<team> <action>` and the list's filters (--status, --handler, …), in batches; a queue pause "
                    "(Queue pauses) holds a team's or a handler's jobs at once")

    def search_word(self, word: str) -> Q | None:
        if job_id := public_id_in(word, "JB"):
            return Q(public_id=job_id)
        if schedule_id := public_id_in(word, "SP"):
            return Q(team__in=every_team(), origin=schedule_id)  # job_team_origin_id, team by team
        if (number := row_number(word)) is not None:
            return Q(pk=number)
        name = named(word)
        if name.teams:
            return Q(team__in=name.teams)  # job_team_id
        # job_team_handler_id, team by team. A word that names no deployed handler is taken as
        # the whole name of one no longer deployed: its jobs stay in the history.
        return Q(team__in=every_team(), handler__in=name.handlers or [word])

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
class AttemptAdmin(AttemptCost, LargeTableAdmin):
    list_display = ["job", "number", "worker", "outcome", "error_code", "started_at", "finished_at"]
    list_filter = ["outcome", choices_filter("error_code", "error code", ErrorCode.choices)]
    search_help_text = "A job's id (JB_…) finds its attempts; a number, the attempt of that number."
    list_select_related = ["job"]
    fields = readonly_fields = tuple("cost_money" if f.name == "cost" else f.name for f in Attempt._meta.fields)

    def row_team(self, row: Attempt) -> Team:
        return row.job.team

    def search_word(self, word: str) -> Q | None:
        if job_id := public_id_in(word, "JB"):
            return Q(job__in=Job.objects.filter(public_id=job_id).values("pk"))  # attempt_unique_number
        number = row_number(word)
        return Q(pk=number) if number is not None else None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(TaskLog)
class TaskLogAdmin(LargeTableAdmin):
    list_display = ["job", "attempt", "stage", "task", "level", "message", "created_at"]
    list_filter = ["level"]  # a stage is free text: searched, not listed (a DISTINCT over every line)
    search_help_text = ("A job's id (JB_…) finds its lines, and words beside it the lines of that job holding them "
                        "(JB_… timeout); a number, the line of that number. Words alone are not looked for in "
                        "every job's lines.")
    list_select_related = ["job"]
    readonly_fields = [f.name for f in TaskLog._meta.fields]

    def row_team(self, row: TaskLog) -> Team:
        return row.job.team

    def search(self, words: list[str]) -> Q | str:
        """Text only within the lines of the jobs named: one job's lines are few (tasklog_job_stage),
        every job's are the biggest table there is."""
        jobs = [job_id for word in words if (job_id := public_id_in(word, "JB"))]
        numbers = [number for word in words if (number := row_number(word)) is not None]
        text = [word for word in words if not public_id_in(word, "JB") and row_number(word) is None]
        found = Q()
        for job_id in jobs:
            found &= Q(job__in=Job.objects.filter(public_id=job_id).values("pk"))
        for number in numbers:
            found &= Q(pk=number)
        if text and not (jobs or numbers):
            return f"Words are looked for in one job's lines only: add the job's id (JB_… {text[0]}). " \
                   f"{self.search_help_text}"
        for word in text:
            found &= Q(message__icontains=word)
        return found

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
    search_help_text = "Part of a pause's id, handler, reason, who paused it, or its team's name (a small table)."
    # Named here: Django joins only the foreign keys that cannot be null, and a pause's team may be.
    list_select_related = ["team"]
    form = QueuePauseForm
    fields = PAUSE_FIELDS = ("scope", "team", "handler", "reason")
    actions = ["resume_selected"]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Resumed through queue_resume only ("Resume selected" above): a raw delete of a pause in
        # force released none of its held jobs, wrote no queue.resumed event and left no record.
        return False

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
        # Pauses that have ended are left, counted (one ending meanwhile is refused by the service, named).
        act_on_selected(self, request, queryset,
                        lambda pause: queue_resume(pause=pause, by=operator_name(request)), label="Resumed",
                        noun="pauses", only=(Q(ended_at__isnull=True), "they had already ended"))
