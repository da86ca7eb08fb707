"""The team, its members and its API tokens over the API. Every write goes through teams.services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from pulse_site.api import LOCATION, TeamAPIView, as_sent, created, error_responses, no_input, valid_input
from pulse_site.teams.models import RETENTION_MAX_DAYS, ApiToken, Membership, Team, user_display, validate_time_zone
from pulse_site.teams.permissions import CanManageTeam, CanManageTeamSettings, CanManageTokens
from pulse_site.teams.selectors import members_for_team, membership_get_for_team, token_get_for_team, tokens_for_team
from pulse_site.teams.services import (
    membership_add_by_username,
    membership_remove,
    membership_set_role,
    token_create,
    token_revoke,
)

# --- Shapes ----------------------------------------------------------------------------------


class RetentionOut(serializers.Serializer):
    job_days = serializers.IntegerField()
    execution_days = serializers.IntegerField()
    event_days = serializers.IntegerField()


class TeamOut(serializers.Serializer):
    id = serializers.CharField(help_text="The team's public id (TM_…).")
    name = serializers.CharField()
    slug = serializers.CharField()
    time_zone = serializers.CharField()
    role = serializers.ChoiceField(
        choices=Membership.Role.choices, allow_null=True, help_text="Your role; null when calling with a token."
    )
    access = serializers.ChoiceField(
        choices=ApiToken.Access.choices, help_text="What this caller may do: read, or read and write."
    )
    job_retention_days = serializers.IntegerField(
        allow_null=True, help_text="Finished jobs (with attempts and logs) are pruned after this many days; "
        "null: the deployment's default (see retention).")
    execution_retention_days = serializers.IntegerField(
        allow_null=True, help_text="Finished schedule executions are pruned after this many days; null: the default.")
    event_retention_days = serializers.IntegerField(
        allow_null=True, help_text="Live events (the outbox and audit trail) are pruned after this many days; "
        "null: the default.")
    retention = RetentionOut(help_text="The ages in force: the team's own, or the deployment's default.")
    retired_at = serializers.DateTimeField(allow_null=True, help_text=(
        "When an operator retired the team (its history stays readable; new jobs, schedules and tokens are "
        "refused with 409 team_retired); null while it is active."))
    retired_by = serializers.CharField(allow_null=True, help_text="Who retired it; null while it is active.")
    notes = serializers.ListField(child=serializers.CharField(), help_text=(
        "What a change did beside saving, to tell whoever made it: a new time zone that moved the budget's "
        "day, week and month (a budget without a zone of its own). Empty on a read."))


class TeamChangeIn(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=100)
    time_zone = serializers.CharField(
        required=False, validators=[validate_time_zone],
        help_text="IANA name: new schedules' default zone, and the budget's windows when the "
        "budget sets no zone of its own.")
    job_retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=RETENTION_MAX_DAYS,
        help_text="Days; null goes back to the deployment's default.")
    execution_retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=RETENTION_MAX_DAYS)
    event_retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=RETENTION_MAX_DAYS)


class MemberOut(serializers.Serializer):
    id = serializers.IntegerField(source="user_id", help_text="The user's id, used in member URLs.")
    username = serializers.CharField(source="user.username")
    name = serializers.SerializerMethodField()
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    joined_at = serializers.DateTimeField(source="created_at")

    def get_name(self, membership: Membership) -> str:
        return user_display(membership.user)


def _role(**kwargs: Any) -> serializers.Field:
    return as_sent(serializers.ChoiceField(choices=Membership.Role.choices), serializers.CharField, max_length=10,
                   **kwargs)


class MemberCreateIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = _role(default=Membership.Role.MEMBER)


class MemberChangeIn(serializers.Serializer):
    role = _role()


class TokenOut(serializers.Serializer):
    id = serializers.CharField(source="public_id", help_text="The token's public id (TK_…), never its secret.")
    name = serializers.CharField()
    access = serializers.ChoiceField(choices=ApiToken.Access.choices)
    prefix = serializers.CharField(help_text="The secret's first characters, to recognise it.")
    created_by = serializers.SerializerMethodField(help_text="Who made it (their username, kept if their user is "
                                                   "deleted since); null: an operator's command.")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    active = serializers.SerializerMethodField()
    outlived = serializers.SerializerMethodField(help_text=(
        "While the token works: why its maker may no longer make tokens in the team (e.g. 'bob is no longer in "
        "the team', 'bob is now member'), so it should be revoked; null otherwise."))

    def get_outlived(self, token: ApiToken) -> str | None:
        return token.outlived_while_working

    def get_created_by(self, token: ApiToken) -> str | None:
        return token.created_by_name or None

    def get_active(self, token: ApiToken) -> bool:
        return token.is_active()


class TokenCreatedOut(TokenOut):
    secret = serializers.CharField(help_text="Shown in this response only; it is stored as a hash.")


class TokenCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    access = as_sent(serializers.ChoiceField(choices=ApiToken.Access.choices, default=ApiToken.Access.READ),
                     serializers.CharField, max_length=5, default=ApiToken.Access.READ)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


# --- Views -----------------------------------------------------------------------------------


def _team_body(team: Team, *, role: str | None, access: str) -> dict:
    return {"id": team.public_id, "name": team.name, "slug": team.slug, "time_zone": team.time_zone,
            "role": role, "access": access, "job_retention_days": team.job_retention_days,
            "execution_retention_days": team.execution_retention_days,
            "event_retention_days": team.event_retention_days,
            "retention": {"job_days": team.retention_days("job"), "execution_days": team.retention_days("execution"),
                          "event_days": team.retention_days("event")},
            "retired_at": team.retired_at.isoformat() if team.retired_at else None,
            "retired_by": team.retired_by if team.retired_at else None, "notes": []}


class TeamView(TeamAPIView):
    permission_classes = [CanManageTeamSettings]

    def _caller(self) -> tuple[str | None, str]:
        membership, token = self.membership, self.token
        if token is not None:
            return None, token.access
        can_write = membership is not None and membership.can_write
        return (membership.role if membership else None), (ApiToken.Access.WRITE if can_write else ApiToken.Access.READ)

    @extend_schema(operation_id="team_retrieve", responses={200: TeamOut, **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        role, access = self._caller()
        return Response(TeamOut(_team_body(self.team, role=role, access=access)).data)

    @extend_schema(operation_id="team_update", request=TeamChangeIn,
                   responses={200: TeamOut, **error_responses(400, 401, 403)})
    def patch(self, request: Request) -> Response:
        data = valid_input(TeamChangeIn, request)
        from budgets.services import team_update_noted  # budgets depends on teams, not the other way

        team, notes = team_update_noted(team=self.team, changes=dict(data), by=self.membership)
        role, access = self._caller()
        return Response(TeamOut(dict(_team_body(team, role=role, access=access), notes=notes)).data)


class MemberListView(TeamAPIView):
    permission_classes = [CanManageTeam]

    @extend_schema(operation_id="team_members_list", responses={200: MemberOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response(MemberOut(members_for_team(self.team), many=True).data)

    @extend_schema(
        operation_id="team_members_create",
        request=MemberCreateIn, parameters=[LOCATION],
        responses={201: MemberOut, **error_responses(400, 401, 403, 409)},
    )
    def post(self, request: Request) -> Response:
        data = valid_input(MemberCreateIn, request)
        membership = membership_add_by_username(
            team=self.team, username=data["username"], role=data["role"], by=self.membership
        )
        return created(MemberOut(membership).data, "api-member", user_id=str(membership.user_id))


class MemberDetailView(TeamAPIView):
    permission_classes = [CanManageTeam]

    @extend_schema(operation_id="team_members_retrieve", responses={200: MemberOut, **error_responses(401, 404)})
    def get(self, request: Request, user_id: int) -> Response:
        membership = membership_get_for_team(team=self.team, user_id=user_id)
        self.check_object_permissions(request, membership)
        return Response(MemberOut(membership).data)

    @extend_schema(
        operation_id="team_members_update",
        request=MemberChangeIn,
        responses={200: MemberOut, **error_responses(400, 401, 403, 404, 409)},
    )
    def patch(self, request: Request, user_id: int) -> Response:
        membership = membership_get_for_team(team=self.team, user_id=user_id)
        self.check_object_permissions(request, membership)
        data = valid_input(MemberChangeIn, request)
        membership = membership_set_role(membership=membership, role=data["role"], by=self.membership)
        return Response(MemberOut(membership).data)

    @extend_schema(operation_id="team_members_destroy", responses={204: None, **error_responses(401, 403, 404, 409)})
    def delete(self, request: Request, user_id: int) -> Response:
        membership = membership_get_for_team(team=self.team, user_id=user_id)
        self.check_object_permissions(request, membership)
        no_input(request)
        membership_remove(membership=membership, by=self.membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListView(TeamAPIView):
    permission_classes = [CanManageTokens]

    @extend_schema(operation_id="tokens_list", responses={200: TokenOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response(TokenOut(tokens_for_team(self.team), many=True).data)

    @extend_schema(
        operation_id="tokens_create", description="409 `team_retired`: the team was retired; it takes no new tokens.",
        request=TokenCreateIn, parameters=[LOCATION],
        responses={201: TokenCreatedOut, **error_responses(400, 401, 403, 409)},
    )
    def post(self, request: Request) -> Response:
        data = valid_input(TokenCreateIn, request)
        token, secret = token_create(
            team=self.team, name=data["name"], access=data["access"], expires_at=data["expires_at"],
            by=self.membership,
        )
        return created(dict(TokenOut(token).data, secret=secret), "api-token", token_id=token.public_id)


class TokenDetailView(TeamAPIView):
    permission_classes = [CanManageTokens]

    @extend_schema(operation_id="tokens_retrieve", summary="One token (never its secret)",
                   responses={200: TokenOut, **error_responses(401, 403, 404)})
    def get(self, request: Request, token_id: str) -> Response:
        token = token_get_for_team(team=self.team, token_id=token_id)
        self.check_object_permissions(request, token)
        return Response(TokenOut(token).data)

    @extend_schema(operation_id="tokens_revoke", description="409 `token_revoked`: it is revoked already.",
                   responses={204: None, **error_responses(401, 403, 404, 409)})
    def delete(self, request: Request, token_id: str) -> Response:
        token = token_get_for_team(team=self.team, token_id=token_id)
        self.check_object_permissions(request, token)
        no_input(request)
        token_revoke(token=token, by=self.membership)
        return Response(status=status.HTTP_204_NO_CONTENT)
