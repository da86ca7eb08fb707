"""Schedule pages: the list, the create and edit forms with a live preview, and one schedule with
its execution history. Each view parses, authorizes, calls the same services as the API and the
admin, and renders; PulseErrors become field errors or a message."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from budgets.money import money_text, parse_money, to_micros
from jobs.handlers.registry import find_public_handler, registered_handlers
from jobs.payload_form import PayloadForm
from pulse_site.errors import PulseError, ValidationError
from pulse_site.live.selectors import event_last_id
from pulse_site.teams.decorators import get_or_404, team_required, writer_required
from schedules import selectors, services
from schedules.forms import ScheduleFilterForm, ScheduleForm, schedule_form_for
from schedules.models import Schedule, execution_status_label

HISTORY = 50



def _schedule(request: HttpRequest, schedule_id: str) -> Schedule:
    return get_or_404(selectors.schedule_get_for_team, team=request.team,  # type: ignore[attr-defined]
                      schedule_id=schedule_id)


def _who(request: HttpRequest) -> str:
    return request.user.get_username()


def _can_write(request: HttpRequest) -> bool:
    return bool(request.membership.can_write)  # type: ignore[attr-defined]


@require_GET
@team_required
def schedule_list(request: HttpRequest) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    query = ScheduleFilterForm(request.GET)
    query.is_valid()
    for field, reasons in query.errors.items():
        messages.error(request, f"{field}: {' '.join(map(str, reasons))}")
    name, handler = query.cleaned_data.get("name", ""), query.cleaned_data.get("handler", "")
    cursor = query.cleaned_data.get("cursor") or None
    # Read before the rows: an event committed in between is replayed instead of lost.
    since = event_last_id(team_id=team.pk)
    try:
        rows, next_cursor = selectors.schedules_list(team=team, after=cursor, name=name, handler=handler,
                                                     limit=selectors.SCHEDULES_PAGE)
    except ValidationError:
        messages.error(request, "That link to a page of schedules is not one this list gave; here is the first.")
        cursor = None
        rows, next_cursor = selectors.schedules_list(team=team, name=name, handler=handler,
                                                     limit=selectors.SCHEDULES_PAGE)
    more = {key: value for key, value in (("name", name), ("handler", handler)) if value}
    return render(request, "schedules/list.html", {
        "rows": rows,
        "name": name,
        "paged": cursor is not None,
        "handler": handler,
        "handlers": sorted(h.name for h in registered_handlers()),
        "next_url": f"?{urlencode({**more, 'cursor': next_cursor})}" if next_cursor else "",
        "since": since,
        "can_write": _can_write(request),
    })


@require_GET
@team_required
def schedule_row(request: HttpRequest, schedule_id: str) -> HttpResponse:
    """One list row, for the live list to redraw with the first render's markup."""
    row = selectors.schedule_row(_schedule(request, schedule_id))
    return render(request, "schedules/_row.html", {"row": row, "can_write": _can_write(request)})


UNKNOWN_HANDLER = "Choose one of the listed handlers."


def _render_form(request: HttpRequest, form: ScheduleForm | None, schedule: Schedule | None, *,
                 kept_apart: list[str] | None = None, status: int = 200) -> HttpResponse:
    """The form page: the handler chooser, then (once one is chosen) the schedule's form."""
    return render(request, "schedules/form.html", {
        "form": form, "schedule": schedule, "handlers": registered_handlers(),
        "handler": form.handler if form is not None else None, "kept_apart": kept_apart or [],
    }, status=status)


def _save(request: HttpRequest, schedule: Schedule | None) -> HttpResponse:
    """Create (schedule None) or update from the posted form; refused, the form comes back with
    each reason on its input and nothing saved."""
    team = request.team  # type: ignore[attr-defined]
    handler = find_public_handler(request.POST.get("handler", ""))
    if handler is None:
        messages.error(request, UNKNOWN_HANDLER)
        return _render_form(request, None, schedule, status=400)
    form = ScheduleForm(handler, request.POST)
    if form.is_valid():
        try:
            if schedule is None:
                saved = services.schedule_create(team=team, created_by=_who(request), **form.values())
            else:
                saved = services.schedule_update(schedule=schedule, changes=form.values(), by=_who(request))
        except PulseError as exc:
            if not form.add_service_error(exc):
                form.add_error(None, exc.message)
        else:
            messages.success(request, f"Schedule “{saved.name}” {'created' if schedule is None else 'saved'}.")
            return redirect("schedules:detail", schedule_id=saved.public_id)
    return _render_form(request, form, schedule, status=400)


@writer_required
def schedule_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _save(request, None)
    if request.method != "GET":
        return HttpResponse(status=405)
    team = request.team  # type: ignore[attr-defined]
    handler = find_public_handler(request.GET.get("handler", ""))
    if handler is None:
        return _render_form(request, None, None)
    return _render_form(request, ScheduleForm(handler, initial={"time_zone": team.time_zone}), None)


@writer_required
def schedule_edit(request: HttpRequest, schedule_id: str) -> HttpResponse:
    schedule = _schedule(request, schedule_id)
    if request.method == "POST":
        return _save(request, schedule)
    if request.method != "GET":
        return HttpResponse(status=405)
    # ?handler= is another handler chosen on this page; its inputs start empty.
    handler = find_public_handler(request.GET.get("handler") or schedule.handler)
    if handler is None:
        if not request.GET.get("handler"):
            messages.error(request, f"Its handler {schedule.handler} is no longer deployed: "
                                    f"choose one to edit “{schedule.name}”.")
        return _render_form(request, None, schedule)
    form, kept_apart = schedule_form_for(schedule, handler)
    return _render_form(request, form, schedule, kept_apart=kept_apart)


@require_GET
@team_required
def schedule_preview(request: HttpRequest) -> JsonResponse:
    """What the form shows as you type: the description and next five runs, or the field errors
    (a 200 either way: half-typed input is the usual case, not a failed request for the browser's
    console to report on every keystroke)."""
    team = request.team  # type: ignore[attr-defined]
    try:
        result = selectors.preview(cron=request.GET.get("cron", ""),
                                   time_zone=request.GET.get("time_zone") or team.time_zone)
    except ValidationError as exc:
        return JsonResponse({"errors": exc.fields})
    zone = result["zone"]
    runs: list[Any] = result["next_runs"]  # type: ignore[assignment]
    # What it would cost, from the handler, payload and estimate typed so far (any of them still
    # unparsable: the cost is left out, the form's own check names the field on save).
    payload = _typed_payload(request.GET)
    try:
        raw = request.GET.get("estimate_override", "").strip()
        override = to_micros(parse_money(raw, field="estimate_override")) if raw else None
    except PulseError:
        override = None
    projected = selectors.projection(team=team, cron=result["cron"], zone=zone, start=runs[0] if runs else None,  # type: ignore[arg-type]
                                     handler=request.GET.get("handler", ""), payload=payload,
                                     estimate_override=override)
    return JsonResponse({
        "description": result["description"],
        "next_runs": [": ".join(filter(None, (run.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z"), note)))
                      for run, note in zip(runs, result["notes"], strict=True)],  # type: ignore[call-overload]
        "projection": f"Next {selectors.PROJECTION_DAYS} days: {projected.text}",
        "over": projected.over_text,
    })


def _typed_payload(query: QueryDict) -> Any:
    """The payload typed so far in the form's inputs for it (its fields, or its JSON box), read
    as the form reads it; None while the handler is none, an input does not parse yet or the
    schema refuses it (saving would be refused: no run of it is costed)."""
    handler = find_public_handler(query.get("handler", ""))
    if handler is None:
        return None
    form = PayloadForm(handler, query)
    if not form.is_valid():
        return None
    payload = form.payload()
    try:
        handler.validate(payload)
    except ValidationError:
        return None
    return payload


def _history(request: HttpRequest, schedule: Schedule) -> tuple[list[Any], str | None, str]:
    """A page of the run history, newest first, as the query asks (`status`, `cursor`): its rows,
    the next page's cursor, and what could not be read in the query (nothing is shown then)."""
    try:
        rows, cursor = selectors.executions_list(schedule=schedule, status=request.GET.get("status", ""),
                                                 before=request.GET.get("cursor") or None, limit=HISTORY)
    except PulseError as exc:
        return [], None, exc.message
    return rows, cursor, ""


def _history_context(request: HttpRequest, schedule: Schedule) -> dict[str, Any]:
    rows, cursor, refused = _history(request, schedule)
    query = request.GET.copy()
    query["cursor"] = cursor or ""
    status = request.GET.get("status", "")
    return {"executions": rows, "history_refused": refused, "history_status": status,
            "history_status_label": execution_status_label(status) if status in selectors.EXECUTION_STATUSES else "",
            "history_statuses": [(value, execution_status_label(value)) for value in selectors.EXECUTION_STATUSES], "history_paged": bool(request.GET.get("cursor")),
            "history_query": urlencode({"status": request.GET.get("status", "")}),
            "next_url": f"?{query.urlencode()}" if cursor else ""}


@require_GET
@team_required
def schedule_detail(request: HttpRequest, schedule_id: str) -> HttpResponse:
    # Read before the rows: an event committed in between is replayed instead of lost.
    since = event_last_id(team_id=request.team.pk)  # type: ignore[attr-defined]
    schedule = _schedule(request, schedule_id)
    return render(request, "schedules/detail.html", {
        "schedule": schedule,
        "description": selectors.schedule_description(schedule),
        "next_runs": selectors.schedule_next_runs(schedule),
        "projection": selectors.schedule_projection(schedule),
        "projection_days": selectors.PROJECTION_DAYS,
        "estimate_override": money_text(schedule.estimate_override),
        "payload_json": json.dumps(schedule.payload, indent=2, sort_keys=True, ensure_ascii=False),
        **_history_context(request, schedule),
        "since": since,
        "can_write": _can_write(request),
    })


@require_GET
@team_required
def schedule_executions(request: HttpRequest, schedule_id: str) -> HttpResponse:
    """The history's rows, redrawn live when an execution or its job changes."""
    schedule = _schedule(request, schedule_id)
    context = _history_context(request, schedule)
    response = render(request, "schedules/_executions.html", {**context, "can_write": _can_write(request)})
    # Where "Load more" goes after these rows (empty: nowhere): new runs push rows off the first
    # page, so a link made when the page was drawn would skip them, or be missing altogether.
    response["X-Next-Url"] = context["next_url"]
    return response


@require_GET
@team_required
def schedule_next_runs(request: HttpRequest, schedule_id: str) -> HttpResponse:
    """The next runs' list items, redrawn with the history: a staged run moves out of it when it starts."""
    schedule = _schedule(request, schedule_id)
    return render(request, "schedules/_next_runs.html", {"schedule": schedule,
                                                         "next_runs": selectors.schedule_next_runs(schedule)})


ACTIONS: dict[str, Callable[..., Any]] = {
    "pause": services.schedule_pause,
    "resume": services.schedule_resume,
    "trigger": services.schedule_trigger,
    "delete": services.schedule_delete,
}


@require_POST
@writer_required
def schedule_action(request: HttpRequest, schedule_id: str, action: str) -> HttpResponse:
    service = ACTIONS.get(action)
    if service is None:
        raise Http404("No such action.")
    schedule = _schedule(request, schedule_id)
    try:
        made = service(schedule=schedule, by=_who(request))
    except PulseError as exc:
        messages.error(request, exc.message)
        return redirect("schedules:detail", schedule_id=schedule.public_id)
    if action == "trigger" and made.job_id is None:
        # The run was recorded, but it made no job (its estimate is over a limit, say): not a success.
        messages.error(request, f"“{schedule.name}” did not run: {made.reason}")
    else:
        done = {"pause": "paused", "resume": "resumed", "trigger": "started: a run was submitted", "delete": "deleted"}
        messages.success(request, f"“{schedule.name}” {done[action]}.")
    if action == "delete":
        return redirect("schedules:list")
    target = request.POST.get("next", "")
    if target.startswith("/schedules/") and "//" not in target:
        return redirect(target)
    return redirect("schedules:detail", schedule_id=schedule.public_id)
