"""The team, its members and its API tokens over the API. Every write goes through teams.services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from pulse_site.api import TeamAPIView, error_responses
from pulse_site.teams.models import ApiToken, Membership, user_display
from pulse_site.teams.permissions import CanManageTeam
from pulse_site.teams.selectors import members_for_team, membership_get_for_team, token_get_for_team, tokens_for_team
from pulse_site.teams.services import (
    membership_add_by_username,
    membership_remove,
    membership_set_role,
    token_create,
    token_revoke,
)

# --- Shapes ----------------------------------------------------------------------------------


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


class MemberOut(serializers.Serializer):
    id = serializers.IntegerField(source="user_id", help_text="The user's id, used in member URLs.")
    username = serializers.CharField(source="user.username")
    name = serializers.SerializerMethodField()
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    joined_at = serializers.DateTimeField(source="created_at")

    def get_name(self, membership: Membership) -> str:
        return user_display(membership.user)


class MemberCreateIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.CharField(max_length=10, default=Membership.Role.MEMBER)


class MemberChangeIn(serializers.Serializer):
    role = serializers.CharField(max_length=10)


class TokenOut(serializers.Serializer):
    id = serializers.CharField(source="public_id", help_text="The token's public id (TK_…), never its secret.")
    name = serializers.CharField()
    access = serializers.ChoiceField(choices=ApiToken.Access.choices)
    prefix = serializers.CharField(help_text="The secret's first characters, to recognise it.")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    active = serializers.SerializerMethodField()

    def get_active(self, token: ApiToken) -> bool:
        return token.is_active()


class TokenCreatedOut(TokenOut):
    secret = serializers.CharField(help_text="Shown in this response only; it is stored as a hash.")


class TokenCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    access = serializers.CharField(max_length=5, default=ApiToken.Access.READ)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- Views -----------------------------------------------------------------------------------


class TeamView(TeamAPIView):
    @extend_schema(operation_id="team_retrieve", responses={200: TeamOut, **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        team, membership, token = self.team, self.membership, self.token
        if token is not None:
            role, access = None, token.access
        else:
            role = membership.role if membership else None
            can_write = membership is not None and membership.can_write
            access = ApiToken.Access.WRITE if can_write else ApiToken.Access.READ
        data = {"id": team.public_id, "name": team.name, "slug": team.slug, "time_zone": team.time_zone,
                "role": role, "access": access}
        return Response(TeamOut(data).data)


class MemberListView(TeamAPIView):
    permission_classes = [CanManageTeam]

    @extend_schema(operation_id="team_members_list", responses={200: MemberOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response(MemberOut(members_for_team(self.team), many=True).data)

    @extend_schema(
        operation_id="team_members_create",
        request=MemberCreateIn,
        responses={201: MemberOut, **error_responses(400, 401, 403, 409)},
    )
    def post(self, request: Request) -> Response:
        data = _valid(MemberCreateIn, request)
        membership = membership_add_by_username(
            team=self.team, username=data["username"], role=data["role"], by=self.membership
        )
        return Response(MemberOut(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(TeamAPIView):
    permission_classes = [CanManageTeam]

    @extend_schema(
        operation_id="team_members_update",
        request=MemberChangeIn,
        responses={200: MemberOut, **error_responses(400, 401, 403, 404, 409)},
    )
    def patch(self, request: Request, user_id: int) -> Response:
        membership = membership_get_for_team(team=self.team, user_id=user_id)
        self.check_object_permissions(request, membership)
        data = _valid(MemberChangeIn, request)
        membership = membership_set_role(membership=membership, role=data["role"], by=self.membership)
        return Response(MemberOut(membership).data)

    @extend_schema(operation_id="team_members_destroy", responses={204: None, **error_responses(401, 403, 404, 409)})
    def delete(self, request: Request, user_id: int) -> Response:
        membership = membership_get_for_team(team=self.team, user_id=user_id)
        self.check_object_permissions(request, membership)
        membership_remove(membership=membership, by=self.membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListView(TeamAPIView):
    permission_classes = [CanManageTeam]

    @extend_schema(operation_id="tokens_list", responses={200: TokenOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response(TokenOut(tokens_for_team(self.team), many=True).data)

    @extend_schema(
        operation_id="tokens_create",
        request=TokenCreateIn,
        responses={201: TokenCreatedOut, **error_responses(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        data = _valid(TokenCreateIn, request)
        token, secret = token_create(
            team=self.team, name=data["name"], access=data["access"], expires_at=data["expires_at"],
            by=self.membership,
        )
        body = dict(TokenOut(token).data, secret=secret)
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetailView(TeamAPIView):
    permission_classes = [CanManageTeam]

    @extend_schema(operation_id="tokens_revoke", responses={204: None, **error_responses(401, 403, 404)})
    def delete(self, request: Request, token_id: str) -> Response:
        token = token_get_for_team(team=self.team, token_id=token_id)
        self.check_object_permissions(request, token)
        token_revoke(token=token, by=self.membership)
        return Response(status=status.HTTP_204_NO_CONTENT)
