"""How API requests say who they are: a team's bearer token, or the browser's session."""

from __future__ import annotations

from typing import Any

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, get_authorization_header
from rest_framework.request import Request

from pulse_site.teams.models import ApiToken, Team
from pulse_site.teams.services import token_authenticate


class ApiTokenUser:
    """`request.user` for a token: authenticated as the token's team, never as a person.

    Tokens are not users: they cannot log in, hold a membership or manage the team.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.team: Team = token.team

    def get_username(self) -> str:
        return f"token:{self.token.prefix}"

    def __str__(self) -> str:
        return self.get_username()


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <secret>`; an invalid, revoked or expired secret is refused at once."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiTokenUser, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if parts and parts[0].lower() == b"token":
            # DRF's own scheme, what a client written against another DRF API sends first. Any
            # other scheme is let by (a proxy's Basic in front of a signed-in browser).
            raise exceptions.AuthenticationFailed("Pulse's tokens go as 'Authorization: Bearer <token>', not 'Token'.")
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
        # A secret of other than ASCII is no token's: looked up as such, counted as a guess.
        secret = parts[1].decode("ascii", errors="replace")
        token = token_authenticate(secret, address=request._request.META.get("REMOTE_ADDR", ""))
        if token is None:
            raise exceptions.AuthenticationFailed("The token is invalid, revoked or expired.")
        # Views and services read the team from the Django request, whichever way it authenticated.
        django_request = request._request
        django_request.team = token.team  # type: ignore[attr-defined]
        django_request.membership = None  # type: ignore[attr-defined]
        return ApiTokenUser(token), token

    def authenticate_header(self, request: Request) -> str:
        # Also what makes DRF answer 401 (not 403) to a request with no credentials at all.
        return f'{self.keyword} realm="api"'


class TeamSessionAuthentication(SessionAuthentication):
    """The browser's session, CSRF enforced. TeamMiddleware has already set request.team and
    request.membership from the session's team.

    A session whose team its user is no longer in (removed since) is refused, 403: the middleware
    falls back to their first other team, which a call made for the team left (a script, a page
    drawn for it) must not act on. Loading a dashboard page takes the team it shows, and the
    API follows it from then on."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        found = super().authenticate(request)
        if found is not None and getattr(request._request, "team_lost", False):
            raise exceptions.PermissionDenied(TEAM_LOST)
        return found


TEAM_LOST = ("Nothing was done: you are no longer in the team this browser was using. Load the dashboard "
             "again to carry on in one of your teams.")


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Describes the bearer token in the OpenAPI schema (registered by being defined)."""

    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API token created on the team page."}


class TeamSessionScheme(SessionScheme):
    target_class = "pulse_site.teams.authentication.TeamSessionAuthentication"
    priority = 0
