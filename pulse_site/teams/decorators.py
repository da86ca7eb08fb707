"""Access for dashboard views: who may see a team page, who may change it."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from pulse_site.errors import NotFound
from pulse_site.teams.middleware import SESSION_TEAM_KEY

View = Callable[..., HttpResponse]
T = TypeVar("T")


# The form field saying which team a page's form was drawn for ({% team_field %}).
TEAM_FIELD = "pulse_team"


def team_required(view: View) -> View:
    """Login required, and a team: someone in no team sees a page that says so (not a crash).
    A form posted from a page drawn for another team than the session's now is refused, with
    nothing done (409). A script asking for JSON (the bulk action's batches) is told in JSON
    why it may not go on: signed out (401), in no team (403)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if wants_json(request) and not request.user.is_authenticated:
            return json_refusal(401, "You are signed out: sign in again, then load the page.")
        return in_team(request, *args, **kwargs)

    @login_required
    @wraps(view)
    def in_team(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.team is None:  # type: ignore[attr-defined]
            if wants_json(request):
                return json_refusal(403, "You are no longer in a team.")
            return render(request, "teams/no_team.html")
        _remember_team(request)
        if request.method == "POST":
            drawn_for = request.POST.get(TEAM_FIELD, "")
            if drawn_for and drawn_for != request.team.public_id:  # type: ignore[attr-defined]
                return _team_switched(request, drawn_for)
        return view(request, *args, **kwargs)

    return wrapper


def _remember_team(request: HttpRequest) -> None:
    """The session keeps the team its pages show (the first team until one is switched to, the
    first other one once removed from it): an API call made with the session after its user has
    left that team is then refused rather than acting on another (TeamSessionAuthentication)."""
    shown = request.team.public_id  # type: ignore[attr-defined]
    if request.session.get(SESSION_TEAM_KEY) != shown:
        request.session[SESSION_TEAM_KEY] = shown


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def json_refusal(status: int, message: str) -> JsonResponse:
    """A refusal in the shape the dashboard's scripts show: {"errors": [why]}."""
    return JsonResponse({"errors": [message]}, status=status)


def _refuse_role(request: HttpRequest, message: str) -> HttpResponse:
    if wants_json(request):
        return json_refusal(403, message)
    raise PermissionDenied(message)


def _team_switched(request: HttpRequest, drawn_for: str) -> HttpResponse:
    """The session switched team (in another tab) since this form's page was drawn: applied now,
    the form would add a member, set a budget or submit jobs in the team switched to."""
    from pulse_site.teams.selectors import memberships_for_user

    shown = request.team.name  # type: ignore[attr-defined]
    # Named only if the user is still in it: the field is the client's, and must reveal no team.
    former = memberships_for_user(request.user).filter(team__public_id=drawn_for).first()  # type: ignore[arg-type]
    was = former.team.name if former is not None else "another team"
    message = (f"Nothing was done: this page was drawn for {was}, and this browser now shows {shown} "
               f"(switched in another tab). Load the page again to act on {shown}.")
    if wants_json(request):
        return json_refusal(409, message)
    return render(request, "teams/team_switched.html", {"message": message}, status=409)


def writer_required(view: View) -> View:
    """Members, admins and owners change the team's work; viewers get 403 before any lookup."""

    @team_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.membership.can_write:  # type: ignore[attr-defined]
            return _refuse_role(request, "Viewers can look but not change anything.")
        return view(request, *args, **kwargs)

    return wrapper


def manager_required(view: View) -> View:
    """Owners and admins only: everyone else in the team gets 403 before any lookup or change."""

    @team_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.membership.can_manage:  # type: ignore[attr-defined]
            return _refuse_role(request, "Only owners and admins can do this.")
        return view(request, *args, **kwargs)

    return wrapper


def get_or_404(selector: Callable[..., T], /, **kwargs: Any) -> T:
    """Call an access selector; its NotFound (another team's id, or no such id) becomes a 404."""
    try:
        return selector(**kwargs)
    except NotFound as exc:
        raise Http404(exc.message) from None
