"""The queue page: whether the team's queue is paused (and by whom, why), pause and resume."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jobs import pausing
from jobs.models import Job, QueuePause
from pulse_site.errors import PulseError
from pulse_site.teams.decorators import manager_required, team_required


def _who(request: HttpRequest) -> str:
    return request.user.get_username()


@require_GET
@team_required
def page(request: HttpRequest) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    context = {
        "in_force": pausing.queue_pauses_for_team(team=team),
        "own": pausing.queue_team_pause(team=team),
        "history": pausing.queue_pause_history(team=team),
        "held": Job.objects.for_team(team).filter(status=Job.Status.PAUSED,
                                                  hold_reasons__0__kind="queue_paused").count(),
        "can_manage": request.membership.can_manage,  # type: ignore[attr-defined]
    }
    return render(request, "jobs/queue.html", context)


@require_GET
@team_required
def banner(request: HttpRequest) -> HttpResponse:
    """The pause banner of every page (its pauses come from jobs.context_processors), re-rendered
    live when a queue.paused or queue.resumed event arrives."""
    return render(request, "jobs/_queue_banner.html")


@require_POST
@manager_required
def pause(request: HttpRequest) -> HttpResponse:
    try:
        pausing.queue_pause(scope=QueuePause.Scope.TEAM, team=request.team,  # type: ignore[attr-defined]
                            reason=request.POST.get("reason", ""), by=_who(request),
                            member=request.membership)  # type: ignore[attr-defined]
    except PulseError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The team's queue is paused: running jobs finish, nothing new starts.")
    return redirect("queue:page")


@require_POST
@manager_required
def resume(request: HttpRequest) -> HttpResponse:
    try:
        pausing.queue_team_resume(team=request.team, by=_who(request), member=request.membership)  # type: ignore[attr-defined]
    except PulseError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The team's queue is running again; held jobs were released.")
    return redirect("queue:page")
