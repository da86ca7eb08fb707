"""Who may do what through the API. Services check again; these give the early, uniform 403."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from pulse_site.teams.models import ApiToken


def _token(request: Request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


class IsTeamMember(BasePermission):
    """Authenticated for a team; writing needs a read-write token or a non-viewer membership."""

    message = "You are not a member of a team."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        if getattr(request, "team", None) is None:
            self.message = "You are not a member of a team."
            return False
        if request.method in SAFE_METHODS:
            return True
        token = _token(request)
        if token is not None:
            self.message = "This token is read-only."
            return token.can_write
        membership = getattr(request, "membership", None)
        self.message = "Viewers cannot change anything."
        return membership is not None and membership.can_write


class ManagersChange(IsTeamMember):
    """Reading is for every member; changing is for owners and admins, in person (never a token).

    On one object's URL the check waits for the object lookup (the view calls
    check_object_permissions), so another team's id answers 404 whoever asks.
    Subclasses name what is being managed in their messages.
    """

    token_message = "API tokens cannot do this."
    role_message = "Only owners and admins can do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method in SAFE_METHODS or view.kwargs:
            return True
        return self._may_manage(request)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return request.method in SAFE_METHODS or self._may_manage(request)

    def _may_manage(self, request: Request) -> bool:
        if _token(request) is not None:
            self.message = self.token_message
            return False
        membership = getattr(request, "membership", None)
        self.message = self.role_message
        return membership is not None and membership.can_manage


class CanManageTeam(ManagersChange):
    token_message = "API tokens cannot manage members or tokens."
    role_message = "Only owners and admins manage members and tokens."


class CanManageTokens(CanManageTeam):
    """Tokens are listed only to those who manage them, as the team page shows them to owners and
    admins alone: a member, a viewer or a token reading them learnt every token's name, prefix,
    maker and last use. Another team's token id is still a 404 (the lookup comes first)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not IsTeamMember.has_permission(self, request, view):
            return False
        return bool(view.kwargs) or self._may_manage(request)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self._may_manage(request)


class CanManageTeamSettings(ManagersChange):
    token_message = "API tokens cannot change the team's settings."
    role_message = "Only owners and admins change the team's settings."
