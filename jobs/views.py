"""Jobs pages: the list, one job, and the submit form. Each view parses, authorizes, calls the
same services as the API and the admin, and renders; PulseErrors become field errors or a message."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from budgets.money import money_str
from jobs import selectors, services
from jobs.forms import BulkForm, JobFilterForm, SubmitForm
from jobs.handlers.registry import Handler, registered_handlers
from jobs.models import Job, TaskLog
from pulse_site.errors import NotFound, PulseError
from pulse_site.live.selectors import event_last_id
from pulse_site.teams.decorators import get_or_404, team_required, writer_required
from pulse_site.teams.forms import add_service_error

PAGE_SIZE = 50
LOG_LIMIT = 1000
ACTIONS: dict[str, Callable[..., Job]] = {
    "cancel": services.job_cancel,
    "pause": services.job_pause,
    "resume": services.job_resume,
    "retry": services.job_retry,
}


@dataclass(frozen=True)
class JobRow:
    """A job with its money already formatted as the API and the live events format it."""

    job: Job

    @property
    def estimate(self) -> str | None:
        return money_str(self.job.cost_estimate)

    @property
    def actual(self) -> str | None:
        return money_str(self.job.cost_actual)

    @property
    def hold_reason(self) -> str:
        return "; ".join(str(r.get("message", "")) for r in self.job.hold_reasons if isinstance(r, dict))



def _job(request: HttpRequest, job_id: str) -> Job:
    return get_or_404(selectors.job_get_for_team, team=request.team, job_id=job_id)  # type: ignore[attr-defined]


def _who(request: HttpRequest) -> str:
    return request.user.get_username()


def _can_write(request: HttpRequest) -> bool:
    return bool(request.membership.can_write)  # type: ignore[attr-defined]


@require_GET
@team_required
def job_list(request: HttpRequest) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    form = JobFilterForm(request.GET)
    form.is_valid()
    data = form.cleaned_data
    query = data.get("q", "")
    if query:
        try:
            job = selectors.job_get_for_team(team=team, job_id=query)
        except NotFound:
            messages.error(request, f"No job “{query}” in this team.")
        else:
            return redirect("jobs:detail", job_id=job.public_id)
    created_after, created_before = form.created_range()
    filters = selectors.JobFilter(status=data.get("status", ""), handler=data.get("handler", ""),
                                  source=data.get("source", ""), created_after=created_after,
                                  created_before=created_before, origin=data.get("schedule", ""))
    cursor = request.GET.get("cursor") or None
    try:
        rows, next_cursor = selectors.jobs_list(team=team, filters=filters, before=cursor, limit=PAGE_SIZE)
    except PulseError as exc:
        messages.error(request, exc.message)
        rows, next_cursor = [], None
    more = request.GET.copy()
    more["cursor"] = next_cursor or ""
    return render(request, "jobs/list.html", {
        "form": form,
        "rows": [JobRow(job) for job in rows],
        "filters": filters,
        "paged": bool(cursor) or created_before is not None,
        "next_url": f"?{more.urlencode()}" if next_cursor else "",
        "since": event_last_id(team_id=team.pk),
        "can_write": _can_write(request),
    })


@require_GET
@team_required
def job_row(request: HttpRequest, job_id: str) -> HttpResponse:
    """One list row, for the live list to insert or redraw with the first render's markup."""
    return render(request, "jobs/_row.html", {"row": JobRow(_job(request, job_id)), "can_write": _can_write(request)})


@require_POST
@writer_required
def job_bulk(request: HttpRequest) -> HttpResponse:
    form = BulkForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("__all__", ["Choose cancel or retry."])))
        return redirect("jobs:list")
    action = form.cleaned_data["action"]
    service = ACTIONS[action]
    team = request.team  # type: ignore[attr-defined]
    done = refused = 0
    for job_id in form.ids:
        try:
            service(job=selectors.job_get_for_team(team=team, job_id=job_id), by=_who(request))
        except PulseError:
            # Another team's id is refused like a finished job: the count never says which ids exist.
            refused += 1
        else:
            done += 1
    verb = "cancelled" if action == "cancel" else "retried"
    (messages.success if not refused else messages.warning)(request, f"{done} {verb}, {refused} refused.")
    return redirect(request.POST.get("next") if _safe_next(request) else "jobs:list")


def _safe_next(request: HttpRequest) -> bool:
    target = request.POST.get("next", "")
    return target.startswith("/jobs/") and "//" not in target


def _log_groups(logs: list[TaskLog]) -> list[dict[str, Any]]:
    """Lines grouped stage → task, each in the order it first appeared."""
    stages: dict[str, dict[str, list[TaskLog]]] = {}
    for line in logs:
        stages.setdefault(line.stage, {}).setdefault(line.task, []).append(line)
    return [
        {"stage": stage, "tasks": [{"task": task, "lines": lines} for task, lines in tasks.items()]}
        for stage, tasks in stages.items()
    ]


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _status_context(request: HttpRequest, job: Job) -> dict[str, Any]:
    return {
        "job": job,
        "row": JobRow(job),
        "attempts": list(selectors.job_attempts(job)),
        "can_write": _can_write(request),
        "actions": _allowed_actions(job),
    }


def _allowed_actions(job: Job) -> list[str]:
    status = job.status
    allowed = []
    if status in Job.ACTIVE and not job.cancel_requested:
        allowed.append("cancel")
    if status == Job.Status.QUEUED:
        allowed.append("pause")
    if status == Job.Status.PAUSED:
        allowed.append("resume")
    if status in (Job.Status.FAILED, Job.Status.CANCELLED):
        allowed.append("retry")
    return allowed


@require_GET
@team_required
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = _job(request, job_id)
    logs = selectors.job_logs(job=job, limit=LOG_LIMIT)
    context = {
        **_status_context(request, job),
        "log_groups": _log_groups(logs),
        "logs_truncated": len(logs) >= LOG_LIMIT,
        "children": list(job.children.order_by("-pk")[:PAGE_SIZE]),
        "since": event_last_id(team_id=job.team_id),
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


def _handler_or_none(name: str) -> Handler | None:
    return next((h for h in registered_handlers() if h.name == name), None)


@team_required
def job_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _job_create(request)
    if request.method != "GET":
        return HttpResponse(status=405)
    if not _can_write(request):
        raise PermissionDenied("Viewers cannot submit jobs.")
    handler = _handler_or_none(request.GET.get("handler", ""))
    form = SubmitForm(handler) if handler else None
    return _render_new(request, handler, form)


def _render_new(request: HttpRequest, handler: Handler | None, form: SubmitForm | None,
                status: int = 200) -> HttpResponse:
    return render(request, "jobs/new.html", {
        "handlers": registered_handlers(), "handler": handler, "form": form,
    }, status=status)


@writer_required
def _job_create(request: HttpRequest) -> HttpResponse:
    handler = _handler_or_none(request.POST.get("handler", ""))
    if handler is None:
        messages.error(request, "Choose one of the listed handlers.")
        return _render_new(request, None, None, status=400)
    form = SubmitForm(handler, request.POST)
    if not form.is_valid():
        return _render_new(request, handler, form, status=400)
    try:
        submission = services.job_submit(
            team=request.team,  # type: ignore[attr-defined]
            handler=handler.name,
            payload=form.payload(),
            priority=form.cleaned_data["priority"],
            source=Job.Source.DASHBOARD,
            created_by=_who(request),
        )
    except PulseError as exc:
        if not add_service_error(form, exc):
            form.add_error(None, exc.message)
        return _render_new(request, handler, form, status=400)
    if submission.would_hold:
        messages.warning(request, "Submitted, and held: " + "; ".join(
            str(r.get("message", r)) for r in submission.would_hold))
    return redirect(reverse("jobs:detail", kwargs={"job_id": submission.job.public_id}))

