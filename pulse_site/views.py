"""The overview: the team at a glance and its activity, kept live over the WebSocket."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from pulse_site.selectors import overview_for_team
from pulse_site.teams.decorators import team_required


@require_GET
@team_required
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "pulse/overview.html", {"overview": overview_for_team(request.team)})  # type: ignore[attr-defined]
