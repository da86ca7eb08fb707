"""The notifications page: targets with a send-test button and their deliveries, and rules. Each
view parses, calls one service and translates its refusal: a message, or for the new-rule form
the page again (400) with what was chosen and the error under its field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jobs.error_codes import ErrorCode
from jobs.handlers.registry import registered_handlers
from pulse_site.errors import PulseError
from pulse_site.notifications import services
from pulse_site.notifications.models import Rule, Target
from pulse_site.notifications.selectors import target_address_shown
from pulse_site.teams.selectors import manages_in_person
from pulse_site.teams.decorators import get_or_404, manager_required, team_required


@require_GET
@team_required
def page(request: HttpRequest) -> HttpResponse:
    return _render_page(request)


def _render_page(request: HttpRequest, *, rule_error: PulseError | None = None,
                 target_error: PulseError | None = None, edited: Target | None = None) -> HttpResponse:
    """The page; after a refused new rule, new target or target edit (`edited`: that target's
    form, open), with what was chosen or typed and the error under its field, as a 400, so
    nothing chosen is lost."""
    team = request.team  # type: ignore[attr-defined]
    may_manage = manages_in_person(membership=request.membership)  # type: ignore[attr-defined]
    targets = list(Target.objects.filter(team=team))
    context = {
        # (target, its address as this reader may see it, its last deliveries)
        "targets": [(t, target_address_shown(target=t, may_manage=may_manage)[0],
                     services.target_deliveries(target=t, limit=10)) for t in targets],
        "rules": Rule.objects.filter(team=team).select_related("target"),
        "kinds": Target.Kind.choices,
        "rule_kinds": Rule.Kind.choices,
        "handlers": [h.name for h in registered_handlers()],
        "error_codes": ErrorCode.values,
        "can_manage": may_manage,
        # The targets offered "Rotate secret" (and shown their secret): those target_update would rotate.
        "rotatable": {t.public_id for t in targets if services.target_rotate_refusal(kind=t.kind) is None},
        "typed": {**_rule_input(request), "kind": request.POST.get("kind", ""),
                  "minutes": request.POST.get("minutes", "")} if rule_error else {},
        "rule_errors": rule_error.fields if rule_error else {},
        "typed_target": {key: request.POST.get(key, "") for key in ("name", "kind", "address")}
        if target_error and edited is None else {},
        "target_errors": target_error.fields if target_error and edited is None else {},
        "edited": {"id": edited.public_id, "errors": target_error.fields if target_error else {},
                   **{key: request.POST.get(key, getattr(edited, key)) for key in ("name", "kind", "address")}}
        if edited is not None else {},
    }
    error = rule_error or target_error
    if error:
        messages.error(request, error.message)
    return render(request, "notifications/page.html", context, status=400 if error else 200)


def _done(request: HttpRequest, change: Callable[[], object], success: str) -> HttpResponse:
    """Run one service call; its refusal becomes the page's error message. Back to the page."""
    try:
        change()
    except PulseError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, success)
    return redirect("notifications:page")


def _target(request: HttpRequest, target_id: str) -> Target:
    return get_or_404(services.target_get_for_team, team=request.team, target_id=target_id)  # type: ignore[attr-defined]


def _rule(request: HttpRequest, rule_id: str) -> Rule:
    return get_or_404(services.rule_get_for_team, team=request.team, rule_id=rule_id)  # type: ignore[attr-defined]


def _minutes(request: HttpRequest) -> int | None | str:
    raw = request.POST.get("minutes", "").strip()
    if not raw:
        return None
    # isdecimal, not isdigit: "²" is a digit int() refuses. The service refuses what is not a whole number.
    return int(raw) if raw.isdecimal() else raw


def _rule_input(request: HttpRequest) -> dict[str, Any]:
    """A rule form's fields as the service takes them (it checks every one)."""
    return {"target": request.POST.get("target", ""), "handlers": [h for h in request.POST.getlist("handlers") if h],
            "error_codes": [c for c in request.POST.getlist("error_codes") if c],
            "final_only": request.POST.get("final_only") == "on", "minutes": _minutes(request)}


@require_POST
@manager_required
def target_add(request: HttpRequest) -> HttpResponse:
    try:
        services.target_create(
            team=request.team, name=request.POST.get("name", ""),  # type: ignore[attr-defined]
            kind=request.POST.get("kind", ""), address=request.POST.get("address", ""),
            by=request.membership, created_by=request.user.get_username())  # type: ignore[attr-defined]
    except PulseError as error:
        return _render_page(request, target_error=error)
    messages.success(request, "Target added.")
    return redirect("notifications:page")


@require_POST
@manager_required
def target_edit(request: HttpRequest, target_id: str) -> HttpResponse:
    target = _target(request, target_id)
    changes = {key: request.POST[key] for key in ("name", "kind", "address") if key in request.POST}
    try:
        services.target_update(target=target, changes=changes, by=request.membership)  # type: ignore[attr-defined]
    except PulseError as error:
        return _render_page(request, target_error=error, edited=_target(request, target_id))
    messages.success(request, "Target saved.")
    return redirect("notifications:page")


@require_POST
@manager_required
def target_enabled(request: HttpRequest, target_id: str) -> HttpResponse:
    target = _target(request, target_id)
    enabled = request.POST.get("enabled") == "1"
    return _done(request, lambda: services.target_update(target=target, changes={"enabled": enabled},
                                                         by=request.membership),  # type: ignore[attr-defined]
                 f"{target.name} {'enabled' if enabled else 'disabled'}.")


@require_POST
@manager_required
def target_rotate(request: HttpRequest, target_id: str) -> HttpResponse:
    target = _target(request, target_id)
    return _done(request, lambda: services.target_update(target=target, changes={"rotate_secret": True},
                                                         by=request.membership),  # type: ignore[attr-defined]
                 f"{target.name} has a new signing secret; receivers must use it from now on.")


@require_POST
@manager_required
def target_delete(request: HttpRequest, target_id: str) -> HttpResponse:
    target = _target(request, target_id)
    return _done(request, lambda: services.target_delete(target=target, by=request.membership),  # type: ignore[attr-defined]
                 f"{target.name} deleted, with its rules.")


@require_POST
@manager_required
def target_test(request: HttpRequest, target_id: str) -> HttpResponse:
    target = _target(request, target_id)
    job = services.target_send_test(target=target, by=request.user.get_username(),
                                    member=request.membership)  # type: ignore[attr-defined]
    messages.success(request, f"Test queued as {job.public_id}.")
    return redirect("notifications:page")


@require_POST
@manager_required
def rule_add(request: HttpRequest) -> HttpResponse:
    try:
        services.rule_create(team=request.team, kind=request.POST.get("kind", ""), by=request.membership,  # type: ignore[attr-defined]
                             **_rule_input(request))
    except PulseError as error:
        return _render_page(request, rule_error=error)
    messages.success(request, "Rule added.")
    return redirect("notifications:page")


@require_POST
@manager_required
def rule_edit(request: HttpRequest, rule_id: str) -> HttpResponse:
    rule = _rule(request, rule_id)
    return _done(request, lambda: services.rule_update(rule=rule, changes=_rule_input(request),
                                                       by=request.membership),  # type: ignore[attr-defined]
                 "Rule saved.")


@require_POST
@manager_required
def rule_enabled(request: HttpRequest, rule_id: str) -> HttpResponse:
    rule = _rule(request, rule_id)
    enabled = request.POST.get("enabled") == "1"
    return _done(request, lambda: services.rule_update(rule=rule, changes={"enabled": enabled},
                                                       by=request.membership),  # type: ignore[attr-defined]
                 f"Rule {'enabled' if enabled else 'disabled'}.")


@require_POST
@manager_required
def rule_delete(request: HttpRequest, rule_id: str) -> HttpResponse:
    rule = _rule(request, rule_id)
    return _done(request, lambda: services.rule_delete(rule=rule, by=request.membership),  # type: ignore[attr-defined]
                 "Rule deleted.")
