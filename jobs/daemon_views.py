"""The jobs page's daemons panel alone, re-fetched by static/js/daemons.js when a daemon's job event arrives."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from jobs.selectors import job_daemons
from pulse_site.teams.decorators import team_required


@require_GET
@team_required
def panel(request: HttpRequest) -> HttpResponse:
    """The same partial as the first render; empty when the team has no daemon (the panel goes)."""
    return render(request, "jobs/_daemons.html", {"daemons": job_daemons(team=request.team)})  # type: ignore[attr-defined]
