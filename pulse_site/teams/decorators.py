"""Access for dashboard views: who may see a team page, who may change it."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from pulse_site.errors import NotFound

View = Callable[..., HttpResponse]
T = TypeVar("T")


def team_required(view: View) -> View:
    """Login required, and a team: someone in no team sees a page that says so (not a crash)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.team is None:  # type: ignore[attr-defined]
            return render(request, "teams/no_team.html")
        return view(request, *args, **kwargs)

    return wrapper


def writer_required(view: View) -> View:
    """Members, admins and owners change the team's work; viewers get 403 before any lookup."""

    @team_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.membership.can_write:  # type: ignore[attr-defined]
            raise PermissionDenied("Viewers can look but not change anything.")
        return view(request, *args, **kwargs)

    return wrapper


def manager_required(view: View) -> View:
    """Owners and admins only: everyone else in the team gets 403 before any lookup or change."""

    @team_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.membership.can_manage:  # type: ignore[attr-defined]
            raise PermissionDenied("Only owners and admins can do this.")
        return view(request, *args, **kwargs)

    return wrapper


def get_or_404(selector: Callable[..., T], /, **kwargs: Any) -> T:
    """Call an access selector; its NotFound (another team's id, or no such id) becomes a 404."""
    try:
        return selector(**kwargs)
    except NotFound as exc:
        raise Http404(exc.message) from None
