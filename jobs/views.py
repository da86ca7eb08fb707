"""Jobs pages: the list, one job, and the submit form. Each view parses, authorizes, calls the
same services as the API and the admin, and renders; PulseErrors become field errors or a message."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from budgets.money import money_str, money_text
from jobs import selectors, services
from jobs.daemons import is_daemon
from jobs.events import hold_reasons_text
from jobs.bulk import jobs_bulk, jobs_bulk_matching
from jobs.forms import BulkForm, BulkMatchingForm, JobFilterForm, SubmitForm, job_filter, parse_search
from jobs.handlers.registry import Handler, find_handler, find_public_handler, registered_handlers
from jobs.models import Job, TaskLog
from pulse_site.errors import NotFound, PulseError, ValidationError
from pulse_site.ids import looks_like_public_id
from pulse_site.live.selectors import event_last_id
from pulse_site.teams.decorators import get_or_404, team_required, writer_required

PAGE_SIZE = 50
LOG_LIMIT = 1000
ACTIONS: dict[str, Callable[..., Job]] = {
    "cancel": services.job_cancel,
    "pause": services.job_pause,
    "resume": services.job_resume,
    "retry": services.job_retry,
    "start": services.job_start,
}


@dataclass(frozen=True)
class JobRow:
    """A job as its row and its page show it: its money grouped by thousands (the CSV export
    writes the plain digits the API gives)."""

    job: Job

    @property
    def estimate(self) -> str | None:
        return money_text(self.job.cost_estimate)

    @property
    def actual(self) -> str | None:
        return money_text(self.job.cost_actual)

    @property
    def wait_ms(self) -> int | None:
        """Due (created, or the later start it was given) → first started."""
        return _ms_between(self.job.due_at or self.job.created_at, self.job.started_at)

    @property
    def run_ms(self) -> int | None:
        return _ms_between(self.job.started_at, self.job.completed_at)

    @property
    def cancel_grace(self) -> float:
        """Seconds after a cancel at which a handler still running is stopped (0: never)."""
        return settings.PULSE_CANCEL_GRACE_SECONDS

    @property
    def timeout_ms(self) -> int:
        return self.job.timeout_seconds * 1000

    @property
    def hold_reason(self) -> str:
        return hold_reasons_text(self.job.hold_reasons)

    @property
    def starts_later(self) -> tuple[str, datetime] | None:
        """Why and when a queued job waits for a later start, so that it does not look stuck: a
        retry's backoff, a daemon's restart, a schedule's run written before its time, or a start
        asked for later (`run_after`). None when it may start now."""
        job = self.job
        if job.status != Job.Status.QUEUED or job.run_after is None or job.run_after <= timezone.now():
            return None
        if job.attempts:
            return ("restarts" if is_daemon(job.handler) else "retries"), job.run_after
        return ("scheduled run, starts" if job.source == Job.Source.SCHEDULE else "starts"), job.run_after

    @property
    def progress(self) -> tuple[int, int | None]:
        """The bar's (max, value): the handler's own figures when it gave a total; full once
        completed; empty while it waits or after it ended otherwise; None (the bar moves without
        a value) only while it runs with no total said."""
        job = self.job
        if job.progress_total:
            return job.progress_total, job.progress_current
        if job.status == Job.Status.COMPLETED:
            return 1, 1
        return 1, (None if job.status == Job.Status.RUNNING else 0)


def _ms_between(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds() * 1000))


def _job(request: HttpRequest, job_id: str) -> Job:
    return get_or_404(selectors.job_get_for_team, team=request.team, job_id=job_id)  # type: ignore[attr-defined]


def _live_since(request: HttpRequest) -> int:
    """The event id a live page resumes from, read BEFORE the rows it shows: an event committed
    between the two reads is then replayed to the page. Read after, a job that ended in between
    stayed "Running" on the page for good (the flaky cancel journey in tests/browser/test_jobs.py)."""
    return event_last_id(team_id=request.team.pk)  # type: ignore[attr-defined]


def _who(request: HttpRequest) -> str:
    return request.user.get_username()


def _can_write(request: HttpRequest) -> bool:
    return bool(request.membership.can_write)  # type: ignore[attr-defined]


COUNT_CAP = 10_000
COUNT_SCAN = 20_000


def _filters(request: HttpRequest) -> tuple[JobFilterForm, selectors.JobFilter, list[str]]:
    """The list's filter from the query string: the form's fields, then the search box's words
    (a field set in the form wins over the same one typed in the search), and what could not be
    read in them, each naming its field. A filter with any such problem matches no job: the list
    shows none and says why, and an export or a bulk action on it is refused."""
    form = JobFilterForm(request.GET)
    valid = form.is_valid()
    data = form.cleaned_data
    search = parse_search(data.get("q", ""))
    problems = [f"{form.fields[name].label or name.capitalize()}: {' '.join(map(str, errors))}"
                for name, errors in form.errors.items() if name in form.fields]
    problems += search.errors
    created_after, created_before = form.created_range()
    filters = job_filter({**data, "created_after": created_after, "created_before": created_before}, search)
    if problems or not valid:
        filters = dataclasses.replace(filters, unreadable=True)
    return form, filters, problems


def _count_capped(team: Any, filters: selectors.JobFilter) -> tuple[int, bool]:
    """How many jobs match, counted up to COUNT_CAP + 1 (the page says "more than 10,000"), and
    whether only the newest COUNT_SCAN jobs were looked at: a payload term is found through the GIN
    index on PostgreSQL (none on SQLite), but counting a common value would still visit every match
    in the team's whole history, and source and creation time have no index at all."""
    rows = selectors.jobs_matching(team=team, filters=filters)
    windowed = False
    if filters.payload or not selectors.jobs_filter_indexed(filters):
        floor = list(Job.objects.for_team(team).order_by("-pk")
                     .values_list("pk", flat=True)[COUNT_SCAN:COUNT_SCAN + 1])
        if floor:
            rows, windowed = rows.filter(pk__gt=floor[0]), True
    # Unordered: a COUNT needs no order, and the default (-id) can lead PostgreSQL down the
    # primary key instead of the filter's own index.
    return rows.order_by()[: COUNT_CAP + 1].count(), windowed


@require_GET
@team_required
def job_list(request: HttpRequest) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    since = _live_since(request)
    query = request.GET.get("q", "").strip()
    if looks_like_public_id(query, "JB"):
        try:
            job = selectors.job_get_for_team(team=team, job_id=query)
        except NotFound:
            messages.error(request, f"No job “{query}” in this team.")
        else:
            return redirect("jobs:detail", job_id=job.public_id)
    form, filters, problems = _filters(request)
    for problem in problems:
        messages.error(request, problem)
    cursor = request.GET.get("cursor") or None
    try:
        rows, next_cursor = selectors.jobs_list(team=team, filters=filters, before=cursor, limit=PAGE_SIZE)
    except PulseError as exc:
        messages.error(request, exc.message)
        rows, next_cursor = [], None
    more = request.GET.copy()
    more["cursor"] = next_cursor or ""
    filtered = filters != selectors.JobFilter()
    matching, windowed = _count_capped(team, filters) if rows and _can_write(request) else (0, False)
    return render(request, "jobs/list.html", {
        "form": form,
        "rows": [JobRow(job) for job in rows],
        "filters": filters,
        "filtered": filtered,
        "matching": matching,
        "matching_capped": matching > COUNT_CAP,
        "count_cap": COUNT_CAP,
        "count_windowed": windowed,
        "count_scan": COUNT_SCAN,
        "filter_query": _without(request.GET, "cursor"),
        "export_max": EXPORT_MAX,
        "paged": bool(cursor) or filters.created_before is not None,
        "next_url": f"?{more.urlencode()}" if next_cursor else "",
        "since": since,
        "can_write": _can_write(request),
    })


# The most jobs one export holds (the newest matching ones): a bounded read, like the list's pages.
EXPORT_MAX = 10_000
EXPORT_COLUMNS = ("id", "handler", "status", "source", "priority", "created_at", "started_at", "completed_at",
                  "wait_ms", "run_ms", "attempts", "max_attempts", "cost_estimate", "cost_actual", "error_code",
                  "error_message", "schedule", "payload")


def _csv_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: a leading =, +, - or @ would make it a formula (CSV
    injection through a payload or an error message), so such text is prefixed with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _export_row(job: Job) -> list[Any]:
    row = JobRow(job)
    cells = (
        job.public_id, job.handler, job.status, job.source, job.priority, job.created_at, job.started_at,
        job.completed_at, row.wait_ms, row.run_ms, job.attempts, job.max_attempts, money_str(job.cost_estimate),
        money_str(job.cost_actual), job.error_code, job.error_message, job.origin, json.dumps(job.payload, separators=(",", ":"), sort_keys=True),
    )
    return [_csv_cell("" if value is None else value.isoformat() if isinstance(value, datetime) else value)
            for value in cells]


@require_GET
@team_required
def job_export(request: HttpRequest) -> HttpResponse:
    """The jobs matching the list's filter as CSV, newest first, at most EXPORT_MAX, read page by page
    through the same keyset reads as the list (so a filter no index serves stays bounded)."""
    team = request.team  # type: ignore[attr-defined]
    _, filters, problems = _filters(request)
    if problems:
        return HttpResponse(" ".join(problems), status=400, content_type="text/plain; charset=utf-8")
    text = io.StringIO()
    text.write("\ufeff")  # the BOM: spreadsheets then read the file as UTF-8
    out = csv.writer(text)
    out.writerow(EXPORT_COLUMNS)
    sent, cursor = 0, None
    while sent < EXPORT_MAX:
        try:
            page, cursor = selectors.jobs_list(team=team, filters=filters, before=cursor,
                                               limit=min(selectors.MAX_PAGE, EXPORT_MAX - sent))
        except PulseError as exc:
            return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
        out.writerows(_export_row(job) for job in page)
        sent += len(page)
        if cursor is None:
            break
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = HttpResponse(text.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{team.slug}-jobs-{stamp}.csv"'
    return response


def _without(query: Any, *keys: str) -> str:
    copy = query.copy()
    for key in keys:
        copy.pop(key, None)
    return str(copy.urlencode())


@require_POST
@writer_required
def job_bulk_matching(request: HttpRequest) -> HttpResponse:
    """One batch (BULK_MAX jobs, newest first) of cancel, retry or delete on the jobs matching the
    filter in the query string, through the same services as one job's buttons. The page's script
    posts batch after batch with the returned cursor and shows the progress; without the script
    one batch runs per submit and the message says whether more remain."""
    form = BulkMatchingForm(request.POST)
    wants_json = "application/json" in request.headers.get("Accept", "")
    if not form.is_valid():
        errors = [str(e) for errs in form.errors.values() for e in errs]
        if wants_json:
            return JsonResponse({"errors": errors}, status=400)
        messages.error(request, " ".join(errors))
        return redirect(reverse("jobs:list") + "?" + _without(request.GET, "cursor"))
    team = request.team  # type: ignore[attr-defined]
    _, filters, problems = _filters(request)
    action = form.cleaned_data["action"]
    try:
        if problems:  # the list showed none of these and said why: nothing to act on
            raise ValidationError(" ".join(problems))
        outcome = jobs_bulk_matching(team=team, action=action, filters=filters,
                                     cursor=form.cleaned_data["cursor"] or None, by=_who(request))
    except PulseError as exc:
        if wants_json:
            return JsonResponse({"errors": [exc.message]}, status=400)
        messages.error(request, exc.message)
        return redirect(reverse("jobs:list") + "?" + _without(request.GET, "cursor"))
    if wants_json:
        return JsonResponse({"processed": len(outcome.done) + len(outcome.refused), "done": len(outcome.done),
                             "refused": len(outcome.refused), "cursor": outcome.cursor})
    more = " More match: submit again to continue." if outcome.cursor else ""
    (messages.success if not outcome.refused else messages.warning)(request, outcome.summary(action) + more)
    return redirect(reverse("jobs:list") + "?" + _without(request.GET, "cursor"))


@require_GET
@team_required
def job_row(request: HttpRequest, job_id: str) -> HttpResponse:
    """One list row, for the live list to insert or redraw with the first render's markup, given
    the list's filter in the query (every filter is decided here, payload terms too). With
    `insert=1`, 204 when the job does not match it (the list asks before putting a new job on
    top, or when it is gone already: deleted since its event, it has no row to insert); a row
    redrawn that no longer matches (a held job cancelled on a list of held ones) says so."""
    inserting = request.GET.get("insert") == "1"
    try:
        job = _job(request, job_id)
    except Http404:
        if inserting:
            return HttpResponse(status=204)
        raise
    _, filters, _ = _filters(request)
    matches = filters == selectors.JobFilter() or selectors.jobs_matching(
        team=request.team, filters=filters).filter(pk=job.pk).exists()  # type: ignore[attr-defined]
    if inserting and not matches:
        return HttpResponse(status=204)
    return render(request, "jobs/_row.html", {"row": JobRow(job), "can_write": _can_write(request),
                                              "unmatched": not matches})


@require_POST
@writer_required
def job_bulk(request: HttpRequest) -> HttpResponse:
    form = BulkForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(map(str, form.errors.get("__all__", ["Choose cancel or retry."]))))
        return redirect("jobs:list")
    action = form.cleaned_data["action"]
    # Another team's id is refused like a finished job: the count never says which ids exist.
    outcome = jobs_bulk(team=request.team, action=action, ids=form.ids, by=_who(request))  # type: ignore[attr-defined]
    (messages.success if not outcome.refused else messages.warning)(request, outcome.summary(action))
    return redirect(request.POST.get("next", "jobs:list") if _safe_next(request) else "jobs:list")


def _safe_next(request: HttpRequest) -> bool:
    target = request.POST.get("next", "")
    return target.startswith("/jobs/") and "//" not in target


def _log_groups(logs: list[TaskLog]) -> list[dict[str, Any]]:
    """Lines grouped stage → task, each in the order it first appeared; a retry's stages are its
    own ("step-1 · attempt 2"), not mixed into the first attempt's (job_detail.js groups alike)."""
    stages: dict[tuple[int, str], dict[str, list[TaskLog]]] = {}
    for line in logs:
        stages.setdefault((max(1, line.attempt), line.stage), {}).setdefault(line.task, []).append(line)
    return [
        {"attempt": attempt, "stage": stage, "tasks": [{"task": task, "lines": lines} for task, lines in tasks.items()]}
        for (attempt, stage), tasks in stages.items()
    ]


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _status_context(request: HttpRequest, job: Job) -> dict[str, Any]:
    return {
        "job": job,
        "row": JobRow(job),
        "waiting": selectors.job_waiting(job),
        "attempts": list(selectors.job_attempts(job)),
        "can_write": _can_write(request),
        "actions": _allowed_actions(job, retired=request.team.is_retired),  # type: ignore[attr-defined]
        # A job of a handler no team may name (Pulse's own, or one no longer deployed) is not re-run
        # by hand, nor any job of a retired team (it would refuse the new job).
        "can_run_again": find_public_handler(job.handler) is not None and not request.team.is_retired,  # type: ignore[attr-defined]
        # What the handler's JobError(details=…) said beside its message (an over-budget refusal's reasons too).
        "error_details_json": _pretty(job.error_details) if job.error_code and job.error_details else "",
    }


def _allowed_actions(job: Job, *, retired: bool) -> list[str]:
    """The buttons the job's page offers: what its state allows, and of a retired team's job only
    what starts nothing (it would refuse the rest)."""
    status = job.status
    allowed = []
    if status in Job.ACTIVE and not job.cancel_requested:
        allowed.append("cancel")
    if retired:
        return allowed
    if services.job_start_refusal(job) is None:
        allowed.append("start")
    if status == Job.Status.QUEUED:
        allowed.append("pause")
    if services.job_resume_refusal(job) is None:
        allowed.append("resume")
    if status in (Job.Status.FAILED, Job.Status.CANCELLED):
        allowed.append("retry")
    return allowed


@require_GET
@team_required
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    since = _live_since(request)
    job = _job(request, job_id)
    logs = selectors.job_logs(job=job, limit=LOG_LIMIT)
    context = {
        **_status_context(request, job),
        "log_groups": _log_groups(logs),
        # A job of exactly LOG_LIMIT lines has them all: only a line after the last shown is left out.
        "logs_truncated": len(logs) >= LOG_LIMIT and bool(selectors.job_logs(job=job, after=logs[-1].pk, limit=1)),
        "children": list(job.children.order_by("-pk")[:PAGE_SIZE]),
        "since": since,
        "payload_json": _pretty(job.payload),
        "result_json": _pretty(job.result),
        "pulse_state_json": _pretty(job.pulse_state),
    }
    return render(request, "jobs/detail.html", context)


@require_GET
@team_required
def job_status(request: HttpRequest, job_id: str) -> HttpResponse:
    """The detail page's status block, redrawn live when the job changes state."""
    return render(request, "jobs/_status.html", _status_context(request, _job(request, job_id)))


@require_POST
@writer_required
def job_action(request: HttpRequest, job_id: str, action: str) -> HttpResponse:
    service = ACTIONS.get(action)
    if service is None:
        raise Http404("No such action.")
    job = _job(request, job_id)
    try:
        job = service(job=job, by=_who(request))
    except PulseError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{job.public_id}: {action} requested." if job.status == Job.Status.RUNNING
                         else f"{job.public_id} is {job.get_status_display().lower()}.")
    return redirect("jobs:detail", job_id=job.public_id)


@team_required
def job_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _job_create(request)
    if request.method != "GET":
        return HttpResponse(status=405)
    if not _can_write(request):
        raise PermissionDenied("Viewers cannot submit jobs.")
    # "Run again": ?from=<job id> starts the form from that job of the team's (404 for another's).
    source = _job(request, request.GET["from"]) if request.GET.get("from") else None
    handler = find_public_handler(request.GET.get("handler") or (source.handler if source else ""))
    if handler is None:
        if source is not None:
            gone = "is Pulse's own: only Pulse submits it" if find_handler(source.handler) else "is no longer deployed"
            messages.error(request, f"{source.public_id}'s handler {source.handler} {gone}.")
        return _render_new(request, None, None)
    if source is not None and source.handler != handler.name:
        source = None  # another handler chosen in the form: it starts blank
    form = SubmitForm(handler, time_zone=request.team.time_zone)  # type: ignore[attr-defined]
    left_out = form.start_from(source) if source is not None else []
    return _render_new(request, handler, form, source=source, left_out=left_out)


UNKNOWN_HANDLER = "Choose one of the listed handlers."


@require_GET
@writer_required
def job_new_preview(request: HttpRequest) -> HttpResponse:
    """The new-job form's preview as you type: what the job would cost and whether it would start
    now, be held (why, and until when) or be refused; or which fields to fix first."""
    handler = find_public_handler(request.GET.get("handler", ""))
    if handler is None:
        return render(request, "jobs/_submit_preview.html", {"refusal": UNKNOWN_HANDLER})
    form = SubmitForm(handler, request.GET, time_zone=request.team.time_zone)  # type: ignore[attr-defined]
    context: dict[str, Any] = {"form": form}
    if form.is_valid():
        try:
            preview = services.job_submit_preview(team=request.team, handler=handler.name,  # type: ignore[attr-defined]
                                                  **form.submission())
        except PulseError as exc:
            if not form.add_service_error(exc):  # a field's (the payload's schema): fix it first
                context["refusal"] = exc.message
        else:
            context.update(preview=preview, estimate=money_text(preview.estimate_micros),
                           later=preview.run_after is not None and preview.run_after > timezone.now(),
                           reasons=[(r.get("message", ""), _reason_resume(r)) for r in preview.would_hold])
    context["fix"] = [(form[name].label, "; ".join(map(str, errors))) for name, errors in form.errors.items() if name in form.fields]
    context["fix"] += [("", error) for error in form.non_field_errors()]
    return render(request, "jobs/_submit_preview.html", context)


def _reason_resume(reason: dict[str, Any]) -> datetime | None:
    return datetime.fromisoformat(reason["resume_at"]) if reason.get("resume_at") else None


def _render_new(request: HttpRequest, handler: Handler | None, form: SubmitForm | None,
                status: int = 200, source: Job | None = None, left_out: list[str] | None = None) -> HttpResponse:
    return render(request, "jobs/new.html", {
        "handlers": registered_handlers(), "handler": handler, "form": form,
        "source": source, "left_out": left_out or [],
    }, status=status)


@writer_required
def _job_create(request: HttpRequest) -> HttpResponse:
    handler = find_public_handler(request.POST.get("handler", ""))
    if handler is None:
        messages.error(request, UNKNOWN_HANDLER)
        return _render_new(request, None, None, status=400)
    form = SubmitForm(handler, request.POST, time_zone=request.team.time_zone)  # type: ignore[attr-defined]
    if not form.is_valid():
        return _render_new(request, handler, form, status=400)
    try:
        submission = services.job_submit(team=request.team, handler=handler.name,  # type: ignore[attr-defined]
                                          source=Job.Source.DASHBOARD, created_by=_who(request), **form.submission())
    except PulseError as exc:
        if not form.add_service_error(exc):
            form.add_error(None, exc.message)
        return _render_new(request, handler, form, status=400)
    if submission.would_hold:
        messages.warning(request, "Submitted, and held: " + hold_reasons_text(submission.would_hold))
    return redirect(reverse("jobs:detail", kwargs={"job_id": submission.job.public_id}))

