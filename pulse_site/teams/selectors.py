"""Reads for teams and access: one helper per object type, 404 for another team's object."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from pulse_site.errors import NotFound
from pulse_site.ids import looks_like_public_id
from pulse_site.teams.models import ApiToken, Membership, Team


def signed_in_user(request: HttpRequest) -> User:
    """The user of a request that a sign-in check (login_required, the admin's) let through."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


def memberships_for_user(user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("team").order_by("team__name")


def membership_for_user_in_team(*, user: User, team_public_id: str | None) -> Membership | None:
    """The user's membership in that team, else their first team's, else None."""
    memberships = memberships_for_user(user)
    if team_public_id:
        chosen = memberships.filter(team__public_id=team_public_id).first()
        if chosen is not None:
            return chosen
    return memberships.first()


def membership_get_for_team(*, team: Team, user_id: int | str) -> Membership:
    try:
        key = int(user_id)
        # A number past the database's integer (9223372036854775808 in the path) names nobody: a 404,
        # not the driver's overflow error.
        if not 0 < key < 2**63:
            raise ValueError(key)
        return Membership.objects.select_related("user", "team").get(team=team, user_id=key)
    except (Membership.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such member in this team.") from None


def token_get_for_team(*, team: Team, token_id: str) -> ApiToken:
    token = (ApiToken.objects.filter(team=team, public_id=token_id).select_related("created_by").first()
             if looks_like_public_id(token_id, "TK") else None)
    if token is None:
        raise NotFound("No such token in this team.")
    return token


def tokens_for_team(team: Team) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(team=team).select_related("created_by").order_by("-created_at")


def members_for_team(team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def team_get_by_slug(slug: str) -> Team:
    """For operators (management commands), who name teams by slug."""
    team = Team.objects.filter(slug=(slug or "").strip()).first()
    if team is None:
        raise NotFound(f"No team has the slug '{slug}'.")
    return team


def user_get_by_username(username: str) -> User:
    user = get_user_model().objects.filter(username=(username or "").strip()).first()
    if user is None:
        raise NotFound(f"No user is called '{username}'.")
    return user


def membership_get_for_user(*, user: User, team_public_id: str) -> Membership:
    """The user's membership in that team; NotFound when they are not in it (or it does not exist)."""
    membership = memberships_for_user(user).filter(team__public_id=team_public_id).first()
    if membership is None:
        raise NotFound("No such team.")
    return membership
