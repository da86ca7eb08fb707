"""Jobs over the API: list, submit, read, act on, and look inside. Every write is a service call."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from budgets.money import money_str
from budgets.services import cap_as_dict
from jobs.bulk import BULK_MAX, BULK_SERVICES, BulkOutcome, jobs_bulk, jobs_bulk_matching
from jobs.error_codes import ErrorCode
from jobs.events import job_summary
from jobs.forms import Search, job_filter, parse_search
from jobs.handlers.registry import registered_handlers
from jobs.models import Attempt, Job, QueuePause, TaskLog
from jobs.pausing import (
    queue_pause,
    queue_pause_as_dict,
    queue_pauses_for_team,
    queue_team_resume,
)
from jobs.selectors import (
    HandlerSummary,
    JobFilter,
    handler_summary,
    job_attempts,
    job_get_for_team,
    job_logs,
    job_stages,
    job_waiting,
    jobs_list,
    queue_stats,
    system_metrics,
)
from jobs.services import (
    job_cancel, job_delete, job_pause, job_resume, job_retry, job_start, job_submit, job_submit_preview,
)
from jobs.watch import job_wait_final, release_connection
from pulse_site.api import (
    LOCATION, PageQuery, TeamAPIView, created, error_responses, no_input, query_choice, query_int, valid_input,
)
from pulse_site.errors import ValidationError, choose_one_of
from pulse_site.ids import looks_like_public_id

# --- Shapes ----------------------------------------------------------------------------------


class ProgressOut(serializers.Serializer):
    current = serializers.IntegerField()
    total = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class JobErrorOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class DaemonOut(serializers.Serializer):
    restarts = serializers.IntegerField(help_text="Starts after the first (each stop, failure or return, restarts it).")
    up_since = serializers.DateTimeField(allow_null=True, help_text="When the running attempt started; null while it waits.")
    uptime_seconds = serializers.IntegerField(allow_null=True)
    restarting_at = serializers.DateTimeField(allow_null=True, help_text="When it starts again, while it waits to.")


class JobOut(serializers.Serializer):
    """A job as lists show it (money as strings)."""

    id = serializers.CharField(help_text="JB_…")
    handler = serializers.CharField()
    status = serializers.ChoiceField(choices=Job.Status.choices)
    # (DRF's metaclass takes declared fields out of the class: `source` and `parent` here do not
    # shadow Field's attributes of those names, which the stubs cannot know.)
    source = serializers.ChoiceField(choices=Job.Source.choices)  # type: ignore[assignment]
    created_by = serializers.CharField(help_text="Who submitted it: a user name, \"token <name>\", \"schedule SP_…\".")
    priority = serializers.IntegerField()
    progress = ProgressOut()
    cost_estimate = serializers.CharField(allow_null=True)
    cost_actual = serializers.CharField(allow_null=True)
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    error = JobErrorOut(allow_null=True)
    hold_reasons = serializers.ListField(child=serializers.DictField())
    resume_at = serializers.DateTimeField(allow_null=True)
    run_after = serializers.DateTimeField(allow_null=True)
    cancel_requested = serializers.BooleanField()
    cancelled_by = serializers.CharField(allow_null=True, help_text="Who asked for the cancel (a user name, \"token "
                                         "<name>\", \"admin <name>\") or why (\"parent cancelled\"); null if none.")
    parent = serializers.CharField(allow_null=True)  # type: ignore[assignment]
    origin = serializers.CharField(allow_null=True, help_text="The schedule (SP_…) that submitted the job, if any.")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    daemon = DaemonOut(allow_null=True, help_text="Only for jobs of daemon handlers: restarts and uptime.")


class JobDetailOut(JobOut):
    payload = serializers.JSONField()
    result = serializers.JSONField(allow_null=True)
    error_details = serializers.JSONField()
    error_retryable = serializers.BooleanField(allow_null=True)
    error_recoverable = serializers.BooleanField(allow_null=True)
    pulse_state = serializers.JSONField()
    handler_version = serializers.CharField()
    idempotency_key = serializers.CharField(allow_null=True)


class JobWaitingOut(serializers.Serializer):
    ahead = serializers.IntegerField(allow_null=True, help_text="In the backlog: how many of the team's jobs are "
                                     "handed to the workers before it (higher priority, or the same and older); "
                                     "null once handed over.")
    ahead_capped = serializers.BooleanField(help_text="`ahead` was counted up to 10,000 and there are more.")
    handed_over_at = serializers.DateTimeField(allow_null=True, help_text="When it was handed to the workers; it "
                                               "starts as soon as one is free.")


class JobRetrievedOut(JobDetailOut):
    waiting = JobWaitingOut(allow_null=True, help_text="Where a queued job that may start now waits; null for any "
                                                      "other job (a held job has `hold_reasons`, one due later "
                                                      "`run_after`).")


class JobCreatedOut(JobDetailOut):
    would_hold = serializers.ListField(
        child=serializers.DictField(),
        help_text="Advisory: why the job would be held if it started now: a pause in force, an exclusive handler's "
                  "running job, the budget's limits (empty: nothing would hold it). An Idempotency-Key's repeat "
                  "gives the job's truth now: a held job's reasons, a queued one's as for a submit, none once "
                  "it has started.",
    )


class JobPageOut(serializers.Serializer):
    results = JobOut(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as ?cursor= for the next page.")


class JobPreviewIn(serializers.Serializer):
    handler = serializers.CharField(max_length=100)
    payload = serializers.JSONField(default=dict)
    priority = serializers.IntegerField(default=0, min_value=-100, max_value=100)
    run_after = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Start no earlier than this (ISO 8601; without an offset, UTC; at "
        "most 365 days ahead); the job waits queued, its page saying when it starts. Past: at once.")
    delay_seconds = serializers.IntegerField(
        required=False, min_value=0, max_value=365 * 86400, help_text="Or: start this many seconds from now.")


class JobPreviewOut(serializers.Serializer):
    estimate = serializers.CharField(help_text="The job's cost estimate (the handler's estimator on this payload).")
    run_after = serializers.DateTimeField(allow_null=True, help_text="When it would start, if later than now.")
    would_hold = serializers.ListField(
        child=serializers.DictField(),
        help_text="Why it would be held if it started now: a pause in force, an exclusive handler's running job, "
                  "the budget's limits (empty: nothing would hold it).")


class JobCreateIn(JobPreviewIn):
    notify = serializers.CharField(required=False, max_length=29,
                                   help_text="A notification target (NT_…) that hears once when this job ends.")


class AttemptOut(serializers.Serializer):
    number = serializers.IntegerField()
    worker = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True, read_only=True)
    outcome = serializers.ChoiceField(choices=Attempt.Outcome.choices)
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    traceback = serializers.CharField()
    cost = serializers.SerializerMethodField()

    def get_cost(self, attempt: Attempt) -> str | None:
        return money_str(attempt.cost)


class LogOut(serializers.Serializer):
    id = serializers.IntegerField()
    attempt = serializers.IntegerField()
    stage = serializers.CharField()
    task = serializers.CharField()
    level = serializers.ChoiceField(choices=TaskLog.Level.choices)
    message = serializers.CharField()
    metadata = serializers.JSONField()
    created_at = serializers.DateTimeField()


class StageTaskOut(serializers.Serializer):
    task = serializers.CharField()
    lines = serializers.IntegerField()


class StageOut(serializers.Serializer):
    stage = serializers.CharField()
    lines = serializers.IntegerField()
    tasks = StageTaskOut(many=True)


class HandlerOut(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    version = serializers.CharField()
    schema = serializers.JSONField()
    timeout = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    retry_on = serializers.ListField(child=serializers.CharField())
    cost = serializers.CharField(allow_null=True, help_text="Fixed cost per run, or null when it depends on the payload.")
    exclusive = serializers.ChoiceField(choices=["hold", "refuse"], allow_null=True,
                                        help_text="One job at a time per team: the next is held, or refused with 409.")
    daemon = serializers.BooleanField(help_text="Runs until cancelled; restarted with backoff when it stops.")


class HandlerTeamOut(serializers.Serializer):
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    held = serializers.IntegerField()
    last_24h = serializers.JSONField(help_text="completed, failed, cancelled, success_rate (%, null before any "
                                     "ended) and failures: {error code: jobs}.")
    wait_ms = serializers.JSONField(allow_null=True, help_text="From when a job was due (its submit, or the later "
                                    "start it was given) to its first start: p50 and p95 over the newest 1,000 "
                                    "finished in 24 h.")
    run_ms = serializers.JSONField(allow_null=True, help_text="First start to end, p50 and p95.")
    cap = serializers.JSONField(allow_null=True, help_text="The team's daily, weekly, monthly caps on it (decimal strings).")
    paused = serializers.JSONField(allow_null=True, help_text="An operator's pause of the handler: reason, since.")
    spent = serializers.JSONField(help_text="Charged to the team's budget today and in the last 30 days (decimal "
                                  "strings, the budget's days).")


class HandlerDetailOut(HandlerOut):
    cost_text = serializers.CharField(help_text="The cost in words: the amount, or how it is estimated.")
    backoff = serializers.JSONField(help_text="base and cap, in seconds, of the retries' exponential backoff.")
    team = HandlerTeamOut(help_text="The calling team's jobs of this handler.")


def handler_detail(summary: HandlerSummary) -> dict[str, Any]:
    handler, timing, cap, pause = summary.handler, summary.timing, summary.cap, summary.pause
    return {
        **handler.describe(),
        "cost_text": handler.cost_text(),
        "backoff": {"base": handler.backoff_base, "cap": handler.backoff_cap},
        "team": {
            "queued": summary.queued, "running": summary.running, "held": summary.held,
            "last_24h": {"completed": summary.completed, "failed": summary.failed, "cancelled": summary.cancelled,
                         "success_rate": summary.success_rate, "failures": dict(summary.failures)},
            "wait_ms": {"p50": timing.wait_median_ms, "p95": timing.wait_p95_ms} if timing else None,
            "run_ms": {"p50": timing.run_median_ms, "p95": timing.run_p95_ms} if timing else None,
            "cap": cap_as_dict(cap) if cap else None,
            "paused": {"reason": pause.reason, "since": pause.created_at.isoformat()} if pause else None,
            "spent": {"today": summary.spent_today_text, "last_30_days": summary.spent_30_days_text},
        },
    }


def job_detail(job: Job) -> dict[str, Any]:
    return {
        **job_summary(job),
        "payload": job.payload,
        "result": job.result,
        "error_details": job.error_details,
        "error_retryable": job.error_retryable,
        "error_recoverable": job.error_recoverable,
        "pulse_state": job.pulse_state,
        "handler_version": job.handler_version,
        "idempotency_key": job.idempotency_key,
    }


DATETIME_HINT = "Use an ISO 8601 date-time, e.g. 2026-11-22T10:00:00Z."


class JobFilterQuery(serializers.Serializer):
    """Which of the team's jobs: the list's filters, and the jobs a bulk action on all matching takes."""

    status = query_choice(Job.Status.values)
    handler = serializers.CharField(required=False, allow_blank=True)
    source = query_choice(Job.Source.values)  # type: ignore[assignment]  # (as above)
    schedule = serializers.CharField(required=False, allow_blank=True,
                                     help_text="Only jobs submitted by this schedule (SP_…).")
    q = serializers.CharField(required=False, allow_blank=True,
                              help_text="The dashboard's search words: a status, a handler, an error code, "
                                        "key=value for a top-level payload field (user=42 matches 42 or \"42\").")
    error_code = query_choice(ErrorCode.values,
                              help_text="Only jobs that ended (or whose last attempt failed) with this code.")
    created_after = serializers.DateTimeField(required=False, error_messages={"invalid": DATETIME_HINT})
    created_before = serializers.DateTimeField(required=False, error_messages={"invalid": DATETIME_HINT})

    def validate_schedule(self, value: str) -> str:
        if value and not looks_like_public_id(value, "SP"):
            raise serializers.ValidationError("A schedule id (SP_…).")
        return value

    def validate_q(self, value: str) -> Search:
        search = parse_search(value)
        if search.errors:
            raise serializers.ValidationError(list(search.errors))
        return search

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Bounds the wrong way round match nothing: an empty page would read as no jobs then.
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after is not None and before is not None and before <= after:
            raise serializers.ValidationError({"created_before": "Later than created_after."})
        return attrs


class JobListQuery(PageQuery, JobFilterQuery):
    pass


class LogsQuery(serializers.Serializer):
    stage = serializers.CharField(required=False, allow_blank=True)
    task = serializers.CharField(required=False, allow_blank=True)
    after = query_int(low=0, high=2**63 - 1, default=0, help_text="Only lines with a larger id (for following).")
    limit = query_int(low=1, high=1000, default=500)


class StatsQuery(serializers.Serializer):
    hours = query_int(low=1, high=720, default=24, help_text="Window for finished jobs, 1 to 720 (default 24).")


# --- Views -----------------------------------------------------------------------------------


class JobListView(TeamAPIView):
    queries = {"GET": JobListQuery}

    @extend_schema(operation_id="jobs_list", responses={200: JobPageOut, **error_responses(400, 401)})
    def get(self, request: Request) -> Response:
        query = self.query
        page, cursor = jobs_list(team=self.team, filters=job_filter(query, query.get("q")),
                                 before=query.get("cursor") or None, limit=query["limit"])
        return Response({"results": [job_summary(job) for job in page], "next_cursor": cursor})

    @extend_schema(
        operation_id="jobs_create",
        request=JobCreateIn,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                     description="Repeat a request safely for 24 h: the first job is returned (200), as it "
                                                 "stands now; another body with the key is a 409. A key is the team's (any of its "
                                                 "tokens or members) and its job's: once that job is deleted, the key "
                                                 "makes a new one."),
                    LOCATION],
        responses={201: JobCreatedOut, 200: JobCreatedOut, **error_responses(400, 401, 403, 409, 413, 422)},
    )
    def post(self, request: Request) -> Response:
        data = valid_input(JobCreateIn, request)
        # Imported here: notifications builds on jobs (its deliveries are jobs), not the other way.
        from pulse_site.notifications.services import job_watch_add, notify_target_for_submit

        target = notify_target_for_submit(team=self.team, target_id=data["notify"]) if data.get("notify") else None
        run_after = _run_after(data)
        # The watch is written with the job or not at all; without one, job_submit's own transaction
        # lets it hand the job over as it commits (its fast path needs a transaction of its own).
        with transaction.atomic() if target is not None else nullcontext():
            submission = job_submit(
                team=self.team, handler=data["handler"], payload=data["payload"], priority=data["priority"],
                source=Job.Source.API, idempotency_key=request.headers.get("Idempotency-Key") or None,
                created_by=self.who, run_after=run_after, notify=target.public_id if target is not None else "",
            )
            if target is not None and submission.created:
                job_watch_add(job=submission.job, target=target)
        body = {**job_detail(submission.job), "would_hold": submission.would_hold}
        if submission.created:
            return created(body, "api-job", job_id=submission.job.public_id)
        return Response(body)  # an Idempotency-Key's repeat: the first job, nothing new


def _run_after(data: dict[str, Any]) -> datetime | timedelta | None:
    """The start asked for: `run_after`, or `delay_seconds` from the submit, not both."""
    if "delay_seconds" not in data:
        return data.get("run_after")
    if data.get("run_after") is not None:
        raise ValidationError.for_field("delay_seconds", "Give run_after or delay_seconds, not both.")
    return timedelta(seconds=data["delay_seconds"])


class JobPreviewView(TeamAPIView):
    @extend_schema(operation_id="jobs_preview", summary="What a submit would meet now, with nothing written",
                   request=JobPreviewIn,
                   responses={200: JobPreviewOut, **error_responses(400, 401, 403, 409, 413, 422)})
    def post(self, request: Request) -> Response:
        data = valid_input(JobPreviewIn, request)
        preview = job_submit_preview(team=self.team, handler=data["handler"], payload=data["payload"],
                                     priority=data["priority"], run_after=_run_after(data))
        return Response({"estimate": money_str(preview.estimate_micros),
                         "run_after": preview.run_after.isoformat() if preview.run_after else None,
                         "would_hold": preview.would_hold})


class JobDetailView(TeamAPIView):
    @extend_schema(operation_id="jobs_retrieve", responses={200: JobRetrievedOut, **error_responses(401, 404)})
    def get(self, request: Request, job_id: str) -> Response:
        job = job_get_for_team(team=self.team, job_id=job_id)
        waiting = job_waiting(job)
        return Response({**job_detail(job), "waiting": waiting.as_dict() if waiting else None})

    @extend_schema(operation_id="jobs_destroy", summary="Delete a finished job with its attempts and logs",
                   description="Its spend stays in the budget's ledger. An unfinished job is refused (409 "
                               "`job_not_finished`): cancel it first.",
                   responses={204: None, **error_responses(401, 403, 404, 409)})
    def delete(self, request: Request, job_id: str) -> Response:
        job = job_get_for_team(team=self.team, job_id=job_id)
        no_input(request)
        job_delete(job=job, by=self.who)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _bulk_action() -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=list(BULK_SERVICES), help_text=(
        "cancel (queued, held or running jobs), retry (failed or cancelled ones) or delete (finished ones)."),
        error_messages={"invalid_choice": choose_one_of(list(BULK_SERVICES))})


class JobBulkIn(serializers.Serializer):
    action = _bulk_action()
    ids = serializers.ListField(child=serializers.CharField(max_length=40), min_length=1, max_length=BULK_MAX,
                                help_text=f"The jobs (JB_…), 1 to {BULK_MAX}.", error_messages={
                                    "min_length": "Give at least one job id.",
                                    "max_length": f"At most {BULK_MAX} ids; use bulk/matching/ for more."})


class JobFilterIn(JobFilterQuery):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and (unknown := sorted(set(data) - set(self.fields))):
            raise serializers.ValidationError({name: ["Unknown filter."] for name in unknown})
        return super().to_internal_value(data)


class JobBulkMatchingIn(serializers.Serializer):
    action = _bulk_action()
    filter = JobFilterIn(help_text="The jobs list's filters (GET jobs/); {} is every job of the team.")
    cursor = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                   help_text="The cursor of the previous answer; none for the first batch.")


class JobBulkRefusalOut(serializers.Serializer):
    id = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class JobBulkOut(serializers.Serializer):
    done = serializers.ListField(child=serializers.CharField(), help_text="The jobs acted on.")
    refused = JobBulkRefusalOut(many=True, help_text="The jobs the action does not apply to, and why (an id "
                                                     "that is no job of the team: `not_found`).")
    cursor = serializers.CharField(allow_null=True, help_text="bulk/matching/: pass it back for the next batch; "
                                                              "null when no more match. Always null for ids.")


def _bulk_answer(outcome: BulkOutcome) -> Response:
    return Response({"done": outcome.done, "cursor": outcome.cursor, "refused": [
        {"id": job_id, "code": exc.code, "message": exc.message} for job_id, exc in outcome.refused]})


class JobBulkView(TeamAPIView):
    @extend_schema(operation_id="jobs_bulk", summary="Cancel, retry or delete the jobs named",
                   description="Each job goes through the same action as its own endpoint; one refused "
                               "(a finished job to cancel, say) does not stop the others.",
                   request=JobBulkIn, responses={200: JobBulkOut, **error_responses(400, 401, 403)})
    def post(self, request: Request) -> Response:
        data = valid_input(JobBulkIn, request)
        return _bulk_answer(jobs_bulk(team=self.team, action=data["action"], ids=data["ids"], by=self.who))


class JobBulkMatchingView(TeamAPIView):
    @extend_schema(operation_id="jobs_bulk_matching", summary="Cancel, retry or delete every job matching a filter",
                   description=f"One batch of {BULK_MAX} matching jobs, newest first, per request: post again "
                               "with the answer's cursor until it is null.",
                   request=JobBulkMatchingIn, responses={200: JobBulkOut, **error_responses(400, 401, 403)})
    def post(self, request: Request) -> Response:
        data = valid_input(JobBulkMatchingIn, request)
        filters = job_filter(data["filter"], data["filter"].get("q"))
        return _bulk_answer(jobs_bulk_matching(team=self.team, action=data["action"], filters=filters,
                                               cursor=data.get("cursor") or None, by=self.who))


def _action_view(service, operation: str, summary: str):
    class ActionView(TeamAPIView):
        @extend_schema(operation_id=operation, summary=summary, request=None,
                       responses={200: JobDetailOut, **error_responses(401, 403, 404, 409)})
        def post(self, request: Request, job_id: str) -> Response:
            job = job_get_for_team(team=self.team, job_id=job_id)
            no_input(request)
            return Response(job_detail(service(job=job, by=self.who)))

    ActionView.__name__ = f"Job{operation.split('_')[-1].title()}View"
    return ActionView


JobCancelView = _action_view(job_cancel, "jobs_cancel", "Cancel a queued, held or running job (and its children)")
JobPauseView = _action_view(job_pause, "jobs_pause", "Hold a queued job")
JobResumeView = _action_view(job_resume, "jobs_resume", "Send a held job back through admission")
JobRetryView = _action_view(job_retry, "jobs_retry", "Run a failed or cancelled job again")
JobStartView = _action_view(job_start, "jobs_start",
                            "Start now a queued job waiting for a later start (run_after, a retry's backoff)")


class JobAttemptsView(TeamAPIView):
    @extend_schema(operation_id="jobs_attempts", responses={200: AttemptOut(many=True), **error_responses(401, 404)})
    def get(self, request: Request, job_id: str) -> Response:
        job = job_get_for_team(team=self.team, job_id=job_id)
        return Response(AttemptOut(job_attempts(job), many=True).data)


class JobStagesView(TeamAPIView):
    @extend_schema(operation_id="jobs_stages", responses={200: StageOut(many=True), **error_responses(401, 404)})
    def get(self, request: Request, job_id: str) -> Response:
        return Response(job_stages(job_get_for_team(team=self.team, job_id=job_id)))


class JobLogsView(TeamAPIView):
    queries = {"GET": LogsQuery}

    @extend_schema(
        operation_id="jobs_logs",
        responses={200: LogOut(many=True), **error_responses(400, 401, 404)},
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = job_get_for_team(team=self.team, job_id=job_id)
        rows = job_logs(job=job, stage=self.query.get("stage"), task=self.query.get("task"),
                        after=self.query["after"], limit=self.query["limit"])
        return Response(LogOut(rows, many=True).data)


class JobChildrenView(TeamAPIView):
    queries = {"GET": PageQuery}

    @extend_schema(operation_id="jobs_children",
                   responses={200: JobPageOut, **error_responses(400, 401, 404)})
    def get(self, request: Request, job_id: str) -> Response:
        parent = job_get_for_team(team=self.team, job_id=job_id)
        page, cursor = jobs_list(team=self.team, filters=JobFilter(parent=parent),
                                 before=self.query.get("cursor") or None, limit=self.query["limit"])
        return Response({"results": [job_summary(job) for job in page], "next_cursor": cursor})


class HandlerListView(TeamAPIView):
    @extend_schema(operation_id="handlers_list", responses={200: HandlerOut(many=True), **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response([spec.describe() for spec in registered_handlers()])


class HandlerDetailView(TeamAPIView):
    @extend_schema(operation_id="handlers_retrieve", responses={200: HandlerDetailOut, **error_responses(401, 404)})
    def get(self, request: Request, name: str) -> Response:
        return Response(handler_detail(handler_summary(team=self.team, name=name)))


class StatsView(TeamAPIView):
    queries = {"GET": StatsQuery}

    @extend_schema(
        operation_id="jobs_stats",
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401)},
    )
    def get(self, request: Request) -> Response:
        hours = self.query["hours"]
        return Response({**queue_stats(team=self.team, since_hours=hours), "system": system_metrics(team=self.team)})


# --- Watch -----------------------------------------------------------------------------------

MAX_WAIT_SECONDS = 60
WAIT_HINT = f"Seconds, more than 0 and at most {MAX_WAIT_SECONDS}."


class WaitQuery(serializers.Serializer):
    timeout = serializers.FloatField(
        required=False, default=30.0, error_messages={"invalid": WAIT_HINT},
        help_text=f"Seconds to wait, more than 0 and at most {MAX_WAIT_SECONDS} (default 30). When it passes the "
                  "job is returned as it is, still 200.")

    def validate_timeout(self, value: float) -> float:
        if not 0 < value <= MAX_WAIT_SECONDS:  # also refuses nan and inf
            raise serializers.ValidationError(WAIT_HINT)
        return value


class JobWaitView(TeamAPIView):
    """Authorizes a wait and answers at once when the job is final; `job_wait` does the waiting."""

    queries = {"GET": WaitQuery}

    @extend_schema(
        operation_id="jobs_wait",
        summary="Wait until the job is final (or the timeout passes) and return it",
        responses={200: JobDetailOut, **error_responses(400, 401, 404)},
    )
    def get(self, request: Request, job_id: str) -> Response:
        timeout = self.query["timeout"]
        job = job_get_for_team(team=self.team, job_id=job_id)
        response = Response(job_detail(job))
        if not job.is_final:
            response.pulse_wait = {"job_pk": job.pk, "team_id": job.team_id, "public_id": job.public_id,  # type: ignore[attr-defined]
                                   "timeout": timeout}
        return response


def _authorize_wait(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        response = JobWaitView.as_view()(request, job_id=job_id)
        response.render()
        return response
    finally:
        release_connection()


# Exempt as DRF's own views are: JobWaitView's session authentication checks CSRF itself, and a
# token client's POST here met Django's HTML 403 CSRF page instead of the API's 405.
@csrf_exempt
async def job_wait(request: HttpRequest, job_id: str) -> HttpResponse:
    """GET /api/v1/jobs/<id>/wait: an async view, so a waiting client holds neither a thread nor a
    database connection; authentication, validation and errors are JobWaitView's."""
    response = await sync_to_async(_authorize_wait, thread_sensitive=False)(request, job_id)
    ticket = getattr(response, "pulse_wait", None)
    if ticket is None:
        return response
    body = await job_wait_final(render=job_detail, **ticket)
    return JsonResponse(body)


# drf-spectacular documents a route by its view class: the async function stands for JobWaitView.
job_wait.cls = JobWaitView  # type: ignore[attr-defined]
job_wait.initkwargs = {}  # type: ignore[attr-defined]


# --- Queue pause -----------------------------------------------------------------------------


class QueuePauseOut(serializers.Serializer):
    id = serializers.CharField(help_text="QP_…")
    scope = serializers.ChoiceField(choices=QueuePause.Scope.choices)
    handler = serializers.CharField(allow_null=True)
    reason = serializers.CharField()
    by = serializers.CharField()
    since = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    ended_by = serializers.CharField(allow_null=True)


class QueueOut(serializers.Serializer):
    paused = serializers.BooleanField(help_text="True while any pause holds this team's jobs.")
    pauses = QueuePauseOut(many=True, help_text="The pauses in force: the team's own, a handler's, every team's.")


class QueuePauseIn(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


def _queue_state(team: Any) -> dict[str, Any]:
    pauses = queue_pauses_for_team(team=team)
    return {"paused": bool(pauses), "pauses": [queue_pause_as_dict(p) for p in pauses]}


class QueueView(TeamAPIView):
    @extend_schema(operation_id="queue_retrieve", responses={200: QueueOut, **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response(_queue_state(self.team))


class QueuePauseView(TeamAPIView):
    """Owners and admins signed in, or a read-write token (a deploy script pausing for maintenance)."""

    @extend_schema(operation_id="queue_pause", summary="Pause the team's queue: running jobs finish, nothing new starts",
                   request=QueuePauseIn, responses={201: QueuePauseOut, **error_responses(400, 401, 403, 409)})
    def post(self, request: Request) -> Response:
        data = valid_input(QueuePauseIn, request)
        pause = queue_pause(scope=QueuePause.Scope.TEAM, team=self.team, reason=data["reason"], by=self.who,
                            member=self.membership)
        return Response(queue_pause_as_dict(pause), status=status.HTTP_201_CREATED)


class QueueResumeView(TeamAPIView):
    @extend_schema(operation_id="queue_resume", summary="Resume the team's queue; held jobs are released",
                   request=None, responses={200: QueuePauseOut, **error_responses(401, 403, 409)})
    def post(self, request: Request) -> Response:
        no_input(request)
        return Response(queue_pause_as_dict(queue_team_resume(team=self.team, by=self.who, member=self.membership)))
