"""The notifications page: targets with a send-test button and their deliveries, and rules."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jobs.handlers.registry import registered_handlers
from pulse_site.errors import PulseError
from pulse_site.notifications import services
from pulse_site.notifications.models import Rule, Target
from pulse_site.teams.decorators import get_or_404, manager_required, team_required


@require_GET
@team_required
def page(request: HttpRequest) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    targets = list(Target.objects.filter(team=team))
    context = {
        "targets": [(t, services.target_deliveries(target=t, limit=10)) for t in targets],
        "rules": Rule.objects.filter(team=team).select_related("target"),
        "kinds": Target.Kind.choices,
        "rule_kinds": Rule.Kind.choices,
        "handlers": [h.name for h in registered_handlers()],
        "can_manage": request.membership.can_manage,  # type: ignore[attr-defined]
    }
    return render(request, "notifications/page.html", context)


@require_POST
@manager_required
def target_add(request: HttpRequest) -> HttpResponse:
    try:
        services.target_create(team=request.team, name=request.POST.get("name", ""),  # type: ignore[attr-defined]
                               kind=request.POST.get("kind", ""), address=request.POST.get("address", ""),
                               by=request.membership, created_by=request.user.get_username())  # type: ignore[attr-defined]
    except PulseError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Target added.")
    return redirect("notifications:page")


@require_POST
@manager_required
def target_test(request: HttpRequest, target_id: str) -> HttpResponse:
    target = get_or_404(services.target_get_for_team, team=request.team, target_id=target_id)  # type: ignore[attr-defined]
    job = services.target_send_test(target=target, by=request.user.get_username(),
                                    member=request.membership)  # type: ignore[attr-defined]
    messages.success(request, f"Test queued as {job.public_id}.")
    return redirect("notifications:page")


@require_POST
@manager_required
def rule_add(request: HttpRequest) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    target = get_or_404(services.target_get_for_team, team=team, target_id=request.POST.get("target", ""))
    handlers = [h for h in request.POST.getlist("handlers") if h]
    try:
        services.rule_create(team=team, target=target, kind=request.POST.get("kind", ""), handlers=handlers,
                             final_only=request.POST.get("final_only") == "on",
                             by=request.membership)  # type: ignore[attr-defined]
    except PulseError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Rule added.")
    return redirect("notifications:page")
