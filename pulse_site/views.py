"""The overview (the team at a glance, kept live) and the search box every page has."""

from __future__ import annotations

from django.contrib import messages
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST, require_safe
from redis.exceptions import RedisError

from pulse_site import paging, selectors, services
from pulse_site.activity import RECENT_EVENTS, ActivityFilter, activity_history, activity_row, activity_rows
from pulse_site.errors import PulseError
from pulse_site.forms import ActivityFilterForm
from pulse_site.live.selectors import Audience
from pulse_site.outage import RETRY_AFTER_SECONDS, is_database_outage
from pulse_site.teams.decorators import team_required


@require_GET
@team_required
def overview(request: HttpRequest) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    overview = selectors.overview_for_team(team, audience=_audience(request), everything=_everything(request))
    pulse, charts = selectors.overview_page(team=team)
    return render(request, "pulse/overview.html", {
        "overview": overview,
        "pulse": pulse,
        "charts": charts,
    })


@require_GET
@team_required
def overview_pulse(request: HttpRequest) -> HttpResponse:
    """Counters, budget, failures, upcoming runs and workers: re-fetched when the team's jobs change."""
    return render(request, "pulse/_pulse.html", {"pulse": selectors.overview_pulse(team=request.team)})  # type: ignore[attr-defined]


def _audience(request: HttpRequest) -> Audience:
    """Who reads the team's events here: which of them the page lists."""
    return Audience.of(membership=request.membership)  # type: ignore[attr-defined]


def _everything(request: HttpRequest) -> bool:
    """Whether the recent events include progress and log lines (`?events=all`)."""
    return request.GET.get("events") == "all"


@require_GET
@team_required
def overview_activity(request: HttpRequest) -> HttpResponse:
    """The recent events after `after`, newest first: the live list asks for them when events arrive."""
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        return HttpResponse("after: a whole number (an event id).", status=400, content_type="text/plain")
    team = request.team  # type: ignore[attr-defined]
    rows = activity_rows(team=team, audience=_audience(request), after=after, everything=_everything(request))
    return render(request, "pulse/_activity_rows.html", {"rows": rows, "time_zone": team.time_zone})


@require_GET
@team_required
def activity(request: HttpRequest) -> HttpResponse:
    """Every event of the team, newest first, filtered by family and subject, a page at a time."""
    team = request.team  # type: ignore[attr-defined]
    audience = _audience(request)
    form = ActivityFilterForm(request.GET, audience=audience)
    rows, cursor = [], None
    if form.is_valid():
        data = form.cleaned_data
        filters = ActivityFilter(family=data["family"], subject=data["subject"], everything=data["all"])
        events, cursor = activity_history(team=team, audience=audience, filters=filters,
                                          before=data["cursor"])
        rows = [activity_row(event) for event in events]
    older = request.GET.copy()
    older["cursor"] = str(cursor)
    newest = request.GET.copy()
    newest.pop("cursor", None)
    return render(request, "pulse/activity.html", {
        "form": form,
        "rows": rows,
        "next_url": f"{reverse('activity')}?{older.urlencode()}" if cursor else None,
        "newest_url": f"{reverse('activity')}?{newest.urlencode()}",
        "paged": "cursor" in request.GET,
        "filtered": any(request.GET.get(name) for name in ("family", "subject", "all")),
        "short": cursor is not None and len(rows) < RECENT_EVENTS,
        "budget": f"{paging.SCAN_BUDGET:,}",
        "time_zone": team.time_zone,
        "retention_days": team.retention_days("event"),
    }, status=200 if form.is_valid() else 400)


@require_GET
@team_required
def overview_charts(request: HttpRequest) -> HttpResponse:
    """The charts, re-fetched every minute."""
    return render(request, "pulse/_charts.html", {"charts": selectors.overview_charts(team=request.team)})  # type: ignore[attr-defined]


@require_GET
@team_required
def search(request: HttpRequest) -> HttpResponse:
    """An id goes straight to its page; anything else filters the jobs list (see search_resolve)."""
    query = request.GET.get("q", "").strip()
    result = selectors.search_resolve(team=request.team, query=query)  # type: ignore[attr-defined]
    if result.not_found:
        messages.error(request, f"Nothing called “{query}” in this team.")
    return redirect(result.url or reverse("jobs:list"))


@require_POST
@login_required
def theme(request: HttpRequest) -> HttpResponse:
    """Set the theme; the header's toggle posts here (JSON back to the script, else a redirect)."""
    try:
        preference = services.preference_set_theme(user=request.user, theme=request.POST.get("theme", ""))
    except PulseError as exc:
        return JsonResponse({"errors": exc.fields or {"theme": [exc.message]}}, status=400)
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"theme": preference.theme})
    target = request.POST.get("next", "")
    return redirect(target if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}) else "overview")


@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and supervisors, without signing in: 200 while this process reaches the
    database and the cache (Redis, with REDIS_URL), else 503 naming what it does not reach. The
    pages say nothing of it: the login page and the API root answer 200 without either."""
    answers = {"database": "ok", "cache": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        if not is_database_outage(exc):
            raise
        answers["database"] = "unavailable"
    try:
        cache.get("pulse:health")
    except (RedisError, OSError):
        answers["cache"] = "unavailable"
    if "unavailable" not in answers.values():
        return JsonResponse(answers)
    response = JsonResponse(answers, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
