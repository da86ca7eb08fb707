"""The handlers pages: what each handler the deployment ships does, takes and costs, and how the
team's jobs of it are doing. The handlers are the deployment's; every figure is the team's own."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from jobs import selectors
from pulse_site.teams.decorators import get_or_404, team_required


@require_GET
@team_required
def page(request: HttpRequest) -> HttpResponse:
    return render(request, "jobs/handlers.html", {
        "summaries": selectors.handler_summaries(team=request.team),  # type: ignore[attr-defined]
    })


@require_GET
@team_required
def detail(request: HttpRequest, name: str) -> HttpResponse:
    summary = get_or_404(selectors.handler_summary, team=request.team, name=name)  # type: ignore[attr-defined]
    return render(request, "jobs/handler.html", {
        "s": summary,
        "h": summary.handler,
        "fields": summary.handler.payload_fields(nested=True),
        "retry_on": sorted(summary.handler.retry_on),
        "schema_json": json.dumps(summary.handler.schema, indent=2),
        "can_write": request.membership.can_write,  # type: ignore[attr-defined]
    })
