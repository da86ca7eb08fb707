"""The budget page: usage, held jobs, history, settings, changes and overrides. Each view parses,
authorizes, calls one service or selector and renders; PulseErrors become dashboard messages."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from budgets import selectors, services
from budgets.services import CAP_FIELDS, POLICY_MONEY_FIELDS
from pulse_site.errors import PulseError, ValidationError
from pulse_site.live.selectors import event_last_id
from pulse_site.teams.decorators import get_or_404, manager_required, team_required

SETTINGS_FIELDS = (*POLICY_MONEY_FIELDS, "calls_per_minute", "max_concurrent", "time_zone", "week_start",
                   "alert_thresholds", "over_budget")
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _live_context(request: HttpRequest) -> dict[str, Any]:
    team = request.team  # type: ignore[attr-defined]
    usage = selectors.budget_usage(team=team)
    thresholds = usage.thresholds
    return {
        "usage": usage,
        "windows": [(w, w.bar(thresholds), w.level(thresholds)) for w in usage.windows],
        "caps": [(handler, [(w, w.bar(thresholds), w.level(thresholds)) for w in rows]) for handler, rows in usage.caps],
        "held": selectors.budget_held_jobs(team=team, limit=50),
        "time_zone": str(services.policy_zone(usage.policy, team)),
    }


@require_GET
@team_required
def page(request: HttpRequest) -> HttpResponse:
    return _render_page(request)


def _form_field(name: str) -> str:
    """The form input a service error is about: handler_caps.<handler>.daily is cap_daily."""
    head, _, rest = name.partition(".")
    if head == "handler_caps":
        last = rest.rpartition(".")[2]  # handler names hold dots themselves
        return f"cap_{last}" if last in CAP_FIELDS else "cap_handler"
    return head


def _render_page(request: HttpRequest, *, form: str = "", error: PulseError | None = None) -> HttpResponse:
    """The page; after a refused form (`form` names it), with what was typed and the error under
    its field, as a 400, so nothing typed is lost."""
    team = request.team  # type: ignore[attr-defined]
    # Read before the usage: an event committed in between is replayed instead of lost.
    since = event_last_id(team_id=team.pk)
    history = selectors.budget_history(team=team)
    live = _live_context(request)
    overrides = selectors.budget_overrides(team=team, limit=20)
    override_refusal = services.budget_override_refusal(by=request.membership)  # type: ignore[attr-defined]
    context = {
        **live,
        "since": since,
        "history": history,
        "spend_chart": selectors.spend_chart(history),
        "changes": selectors.budget_changes(team=team, limit=20),
        "overrides": overrides,
        # The form and "End now" are offered by this; "End now" on the overrides
        # budget_override_end would end.
        "override_refusal": override_refusal,
        "endable": {o.public_id for o in overrides if override_refusal is None
                    and services.budget_override_end_refusal(o, now=live["usage"].now) is None},
        "weekdays": list(enumerate(WEEKDAYS)),
        "thresholds_text": ", ".join(str(t) for t in selectors.budget_policy_get(team=team).alert_thresholds),
        "typed": {"form": form, **request.POST.dict()} if error else {},
        "field_errors": {_form_field(name): reasons for name, reasons in error.fields.items()} if error else {},
    }
    if error:
        messages.error(request, error.message)
    return render(request, "budgets/page.html", context, status=400 if error else 200)


@require_GET
@team_required
def banner(request: HttpRequest) -> HttpResponse:
    """The alert banner of every page (its alerts come from budgets.context_processors),
    re-rendered live when a budget.alert or budget.policy event arrives."""
    return render(request, "budgets/_alert_banner.html")


@require_GET
@team_required
def live(request: HttpRequest) -> HttpResponse:
    """The live part of the page, re-rendered with the same partial when an event arrives."""
    return render(request, "budgets/_live.html", _live_context(request))


@require_POST
@manager_required
def settings_update(request: HttpRequest) -> HttpResponse:
    # What a person typed, without the spaces around it (the API, whose clients write JSON, takes none).
    changes: dict[str, Any] = {name: request.POST[name].strip() for name in SETTINGS_FIELDS if name in request.POST}
    handler = request.POST.get("cap_handler", "").strip()
    amounts = {name: request.POST.get(f"cap_{name}", "").strip() for name in CAP_FIELDS}
    if handler:
        changes["handler_caps"] = {handler: amounts}
    team = request.team  # type: ignore[attr-defined]
    try:
        if not handler and any(amounts.values()):
            # The API keys a cap by its handler; the form's amounts without one would be dropped.
            raise ValidationError.for_field("cap_handler", "Name the handler these amounts cap.")
        _, notes = services.budget_policy_update_noted(team=team, changes=changes, by=request.membership)  # type: ignore[attr-defined]
    except PulseError as error:
        return _render_page(request, form="settings", error=error)
    messages.success(request, "Budget settings saved.")
    for note in notes:
        messages.warning(request, note)
    return redirect("budgets:page")


@require_POST
@manager_required
def cap_remove(request: HttpRequest) -> HttpResponse:
    handler = request.POST.get("handler", "")
    try:
        services.budget_policy_update(team=request.team, by=request.membership,  # type: ignore[attr-defined]
                                      changes={"handler_caps": {handler: {}}})
    except PulseError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The cap on {handler} is removed.")
    return redirect("budgets:page")


@require_POST
@team_required
def override_create(request: HttpRequest) -> HttpResponse:
    try:
        # Before the expiry is read: a post from a page drawn before the refusal held is told it,
        # not sent to fix a field of a form the page no longer shows.
        if (refusal := services.budget_override_refusal(by=request.membership)) is not None:  # type: ignore[attr-defined]
            raise refusal
        try:
            expires_at = parse_datetime(request.POST.get("expires_at", "") or "")
        except ValueError:  # shaped like one, but no such time (month 13, 25 o'clock)
            expires_at = None
        if expires_at is None:
            raise ValidationError.for_field("expires_at", "Give the expiry as a date and time.")
        if expires_at.tzinfo is None:
            # A datetime-local input: the team's (budget) time zone.
            zone = services.policy_zone(services.budget_policy_get(team=request.team))  # type: ignore[attr-defined]
            expires_at = expires_at.replace(tzinfo=zone)
        services.budget_override_create(team=request.team, amount=request.POST.get("amount", "").strip(),  # type: ignore[attr-defined]
                                        expires_at=expires_at, reason=request.POST.get("reason", ""),
                                        by=request.membership)  # type: ignore[attr-defined]
    except PulseError as error:
        return _render_page(request, form="override", error=error)
    else:
        messages.success(request, "Override created: held jobs that fit it are released.")
    return redirect("budgets:page")


@require_POST
@team_required
def override_end(request: HttpRequest, override_id: str) -> HttpResponse:
    override = get_or_404(selectors.override_get_for_team, team=request.team, override_id=override_id)  # type: ignore[attr-defined]
    try:
        services.budget_override_end(override=override, by=request.membership)  # type: ignore[attr-defined]
    except PulseError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Override ended.")
    return redirect("budgets:page")
