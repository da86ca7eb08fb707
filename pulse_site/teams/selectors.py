"""Reads for teams and access: one helper per object type, 404 for another team's object."""

from __future__ import annotations

from collections.abc import Collection
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from pulse_site.errors import NotFound
from pulse_site.ids import looks_like_public_id
from pulse_site.live.services import MEMBERSHIP_REMOVED, ROLE_CHANGED, SIGNED_OUT
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


def membership_shown(*, user: User, team_public_id: str | None) -> tuple[Membership | None, bool]:
    """The membership whose team a session's pages show, the session naming `team_public_id`
    (membership_for_user_in_team); and whether that team is lost: named, and the user is no
    longer in it (removed since), so that the pages fall back to another team. One rule for the
    pages (TeamMiddleware), the API (TeamSessionAuthentication) and the live sockets."""
    membership = membership_for_user_in_team(user=user, team_public_id=team_public_id)
    lost = bool(team_public_id) and (membership is None or membership.team.public_id != team_public_id)
    return membership, lost


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


def manages_in_person(*, membership: Membership | None, token: ApiToken | None = None) -> bool:
    """Whether a caller sees what only the team's managers may: its API tokens (their list and the
    events about them), webhook URLs in full and signing secrets. Owners and admins in person
    (Membership.can_manage, as manager_required and the API's ManagersChange ask); never a token,
    whatever its access, nor members and viewers."""
    return token is None and membership is not None and membership.can_manage


def token_get_for_team(*, team: Team, token_id: str) -> ApiToken:
    token = (ApiToken.objects.filter(team=team, public_id=token_id).select_related("created_by").first()
             if looks_like_public_id(token_id, "TK") else None)
    if token is None:
        raise NotFound("No such token in this team.")
    return token


def tokens_for_team(team: Team) -> QuerySet[ApiToken]:
    """The team's tokens, each with `maker_role` (its maker's role in the team now, None when they
    are not in it) for ApiToken.outlived_reason."""
    return _with_maker_role(ApiToken.objects.filter(team=team)).select_related("created_by").order_by("-created_at")


def _with_maker_role(tokens: QuerySet[ApiToken]) -> QuerySet[ApiToken]:
    role = Membership.objects.filter(team_id=OuterRef("team_id"), user_id=OuterRef("created_by_id")).values("role")[:1]
    return tokens.annotate(maker_role=Subquery(role))


def tokens_outliving_makers(*, team: Team | None = None) -> list[tuple[ApiToken, str]]:
    """The unrevoked, unexpired tokens (of `team`, else of every team) whose maker may no longer
    make tokens in its team, each with why (ApiToken.outlived_reason), by team then age. Removing
    or demoting a maker revokes their tokens; tokens made before that rule, or whose maker's
    membership went some other way (a user deleted in a shell), are still there to find."""
    tokens = _with_maker_role(ApiToken.objects.filter(revoked_at__isnull=True).exclude(expires_at__lte=timezone.now()))
    if team is not None:
        tokens = tokens.filter(team=team)
    found = tokens.select_related("team", "created_by").order_by("team__slug", "pk")
    return [(token, reason) for token in found if (reason := token.outlived_reason()) is not None]


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


def access_lost(*, team_id: int, sessions: Collection[tuple[str, int, str]],
                token_ids: Collection[int]) -> tuple[dict[tuple[str, int, str], str], dict[int, str]]:
    """Of the (session key, user id, role) triples and tokens that opened live sockets on the team,
    those that no longer give access to it as they did, each with why ("signed out", "membership
    removed", "role changed", "token revoked", "token expired", "its maker is deactivated"). Three queries whatever the number
    of sockets: the sessions, the memberships with their users, the tokens (a deleted team took its
    memberships and tokens).

    A session is signed out as Django would find it on its next request: gone (signed out in
    another tab), expired, another user's, its user deactivated, or its password hash no longer
    the user's (a password set in admin). A role other than the one the socket opened with is a
    change membership_set_role's close message may not have reached it with (lost, or sent before
    the socket joined its group): what the socket is sent follows the role it read."""
    data = _live_sessions({key for key, _, _ in sessions})
    members = {m.user_id: m for m in Membership.objects.filter(
        team_id=team_id, user_id__in={user_id for _, user_id, _ in sessions}).select_related("user")}
    lost: dict[tuple[str, int, str], str] = {}
    for key, user_id, role in sessions:
        session = data.get(key)
        member = members.get(user_id)
        if session is None or session.get(SESSION_KEY) != str(user_id):
            lost[(key, user_id, role)] = SIGNED_OUT
        elif member is None:
            lost[(key, user_id, role)] = MEMBERSHIP_REMOVED
        elif not member.user.is_active or not _session_hash_matches(member.user, session.get(HASH_SESSION_KEY) or ""):
            lost[(key, user_id, role)] = SIGNED_OUT
        elif member.role != role:
            lost[(key, user_id, role)] = ROLE_CHANGED
    now = timezone.now()
    tokens = {token.pk: token for token in ApiToken.objects.filter(
        team_id=team_id, pk__in=list(token_ids)).select_related("created_by")}
    lost_tokens = {pk: reason for pk in token_ids
                   if (reason := tokens[pk].inactive_reason(now) if pk in tokens else "token revoked")}
    return lost, lost_tokens


def _live_sessions(keys: Collection[str]) -> dict[str, dict[str, Any]]:
    """The data of the sessions that exist and have not expired, by key."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if not keys:
        return {}
    if hasattr(store_class, "get_model_class"):  # the database's sessions (db, cached_db): one query
        store = store_class()
        rows = store_class.get_model_class().objects.filter(session_key__in=list(keys), expire_date__gt=timezone.now())
        return {row.session_key: store.decode(row.session_data) for row in rows}
    found = {key: store_class(key).load() for key in keys}  # load() is {} for a missing or expired one
    return {key: data for key, data in found.items() if data}


def _session_hash_matches(user: Any, session_hash: str) -> bool:
    """django.contrib.auth.get_user's check, SECRET_KEY_FALLBACKS included."""
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    return any(constant_time_compare(session_hash, fallback) for fallback in user.get_session_auth_fallback_hash())
