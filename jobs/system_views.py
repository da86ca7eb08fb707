"""The system page: every team's executor, the workers and the operators' pauses, for staff only."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from jobs.executor import executor_system


def _staff_only(request: HttpRequest) -> None:
    # A 404, not a 403: the page does not exist for anyone but operators.
    if not request.user.is_staff:
        raise Http404("No such page.")


@require_GET
@login_required
def page(request: HttpRequest) -> HttpResponse:
    _staff_only(request)
    return render(request, "system/page.html", {"system": executor_system()})


@require_GET
@login_required
def status(request: HttpRequest) -> HttpResponse:
    """The page's figures alone, re-fetched every few seconds by static/js/system.js."""
    _staff_only(request)
    return render(request, "system/_status.html", {"system": executor_system()})
