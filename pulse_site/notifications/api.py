"""Notification targets, rules, test sends and delivery history over the API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.api import JobOut
from jobs.events import job_summary
from pulse_site.api import LOCATION, TeamAPIView, created, error_responses, no_input, valid_input
from pulse_site.errors import choose_one_of
from pulse_site.notifications import services
from pulse_site.notifications.models import Rule, Target
from pulse_site.notifications.selectors import target_address_shown
from pulse_site.teams.selectors import manages_in_person
from pulse_site.teams.permissions import ManagersChange


class CanManageNotifications(ManagersChange):
    token_message = "API tokens cannot change notifications; an owner or admin does, signed in."
    role_message = "Only owners and admins manage notifications."


class TargetOut(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Target.Kind.choices)
    address = serializers.SerializerMethodField(
        help_text="An email address, or a webhook's URL: in full to owners and admins signed in; to members, "
                  "viewers and tokens masked as `scheme://host[:port]/…` (its path and query may be a secret).")
    address_masked = serializers.SerializerMethodField(help_text="true when `address` is a masked webhook URL.")
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()

    def _shown(self, target: Target) -> tuple[str, bool]:
        # Masked unless the view says the reader manages notifications (context "may_manage").
        return target_address_shown(target=target, may_manage=self.context.get("may_manage", False))

    def get_address(self, target: Target) -> str:
        return self._shown(target)[0]

    def get_address_masked(self, target: Target) -> bool:
        return self._shown(target)[1]


class TargetCreatedOut(TargetOut):
    secret = serializers.CharField(help_text="Webhooks: verify X-Pulse-Signature = sha256=HMAC(secret, timestamp.body).")


class TargetUpdatedOut(TargetOut):
    """A PATCH's answer: the new secret only when `rotate_secret` asked for one."""

    secret = serializers.CharField(required=False, help_text="Only when `rotate_secret` was true: the new signing "
                                                             "secret (X-Pulse-Signature = sha256=HMAC(secret, timestamp.body)).")


class TargetIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=Target.Kind.choices)
    address = serializers.CharField(max_length=500)


class TargetPatch(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    kind = serializers.ChoiceField(choices=Target.Kind.choices, required=False)
    address = serializers.CharField(max_length=500, required=False)
    enabled = serializers.BooleanField(required=False)
    rotate_secret = serializers.BooleanField(required=False, help_text=(
        "true: a new signing secret, in the answer (webhooks only: of an email target, a 400 on this field)."))


class RuleOut(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    target = serializers.CharField(source="target.public_id")
    kind = serializers.ChoiceField(choices=Rule.Kind.choices)
    handlers = serializers.ListField(child=serializers.CharField())
    error_codes = serializers.ListField(child=serializers.CharField(),
                                        help_text="job_failed: only failures with these codes (empty: any).")
    final_only = serializers.BooleanField()
    minutes = serializers.IntegerField(allow_null=True, help_text="held_long: minutes a hold lasts before it is sent.")
    enabled = serializers.BooleanField()


class RuleIn(serializers.Serializer):
    target = serializers.CharField(help_text="The team's target (NT_…); another id is a 400 naming `target`.")
    kind = serializers.ChoiceField(choices=Rule.Kind.choices,
                                   error_messages={"invalid_choice": choose_one_of(Rule.Kind.values)})
    handlers = serializers.ListField(child=serializers.CharField(), required=False, default=list,
                                     help_text=f"Only jobs of these handlers (empty: any); each one a team may "
                                               f"submit, at most {services.MAX_RULE_HANDLERS}, repeats dropped.")
    error_codes = serializers.ListField(child=serializers.CharField(), required=False, default=list,
                                        help_text="job_failed: only failures with these codes (empty: any).")
    final_only = serializers.BooleanField(required=False, default=True)
    minutes = serializers.IntegerField(required=False, allow_null=True, default=None,
                                       help_text="Required for held_long (1 to 10080); refused on any other kind.")
    enabled = serializers.BooleanField(required=False, default=True)


class RulePatch(serializers.Serializer):
    target = serializers.CharField(required=False)
    handlers = serializers.ListField(child=serializers.CharField(), required=False)
    error_codes = serializers.ListField(child=serializers.CharField(), required=False)
    final_only = serializers.BooleanField(required=False)
    minutes = serializers.IntegerField(required=False, allow_null=True)
    enabled = serializers.BooleanField(required=False)


def _shown_to(view: TeamAPIView) -> dict[str, Any]:
    """A target serializer's context: whether the caller sees webhook URLs in full."""
    return {"may_manage": manages_in_person(membership=view.membership, token=view.token)}


def _valid(cls: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    # On a PATCH, a field the serializer lacks is one that cannot change (a rule's kind).
    return valid_input(cls, request, unknown="This field cannot be changed." if request.method == "PATCH"
                       else "Unknown field.")


class TargetListView(TeamAPIView):
    permission_classes = [CanManageNotifications]

    @extend_schema(operation_id="notification_targets_list", responses={200: TargetOut(many=True), **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response(TargetOut(Target.objects.filter(team=self.team), many=True, context=_shown_to(self)).data)

    @extend_schema(operation_id="notification_targets_create", request=TargetIn, parameters=[LOCATION],
                   responses={201: TargetCreatedOut, **error_responses(400, 401, 403, 409)})
    def post(self, request: Request) -> Response:
        data = _valid(TargetIn, request)
        target = services.target_create(team=self.team, by=self.membership, created_by=self.who, **data)
        return created(TargetCreatedOut(target, context=_shown_to(self)).data, "api-notification-target",
                       target_id=target.public_id)


class TargetDetailView(TeamAPIView):
    permission_classes = [CanManageNotifications]

    def _target(self, request: Request, target_id: str) -> Target:
        target = services.target_get_for_team(team=self.team, target_id=target_id)
        self.check_object_permissions(request, target)
        return target

    @extend_schema(operation_id="notification_targets_retrieve", responses={200: TargetOut, **error_responses(401, 404)})
    def get(self, request: Request, target_id: str) -> Response:
        return Response(TargetOut(self._target(request, target_id), context=_shown_to(self)).data)

    @extend_schema(operation_id="notification_targets_update", request=TargetPatch,
                   responses={200: TargetUpdatedOut, **error_responses(400, 401, 403, 404, 409)},
                   description="The answer carries `secret` only when `rotate_secret` is true.")
    def patch(self, request: Request, target_id: str) -> Response:
        target = self._target(request, target_id)
        changes = _valid(TargetPatch, request)
        target = services.target_update(target=target, changes=changes, by=self.membership, who=self.who)
        out = TargetCreatedOut if changes.get("rotate_secret") else TargetOut
        return Response(out(target, context=_shown_to(self)).data)

    @extend_schema(operation_id="notification_targets_destroy", responses={204: None, **error_responses(401, 403, 404)})
    def delete(self, request: Request, target_id: str) -> Response:
        target = self._target(request, target_id)
        no_input(request)
        services.target_delete(target=target, by=self.membership, who=self.who)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TargetTestView(TeamAPIView):
    permission_classes = [CanManageNotifications]

    @extend_schema(operation_id="notification_targets_test", summary="Send a test notification (a pulse.notify job)",
                   request=None, responses={202: JobOut, **error_responses(401, 403, 404)})
    def post(self, request: Request, target_id: str) -> Response:
        target = services.target_get_for_team(team=self.team, target_id=target_id)
        self.check_object_permissions(request, target)
        no_input(request)
        job = services.target_send_test(target=target, by=self.who, member=self.membership)
        return Response(job_summary(job), status=status.HTTP_202_ACCEPTED)


class TargetDeliveriesView(TeamAPIView):
    @extend_schema(operation_id="notification_targets_deliveries",
                   responses={200: JobOut(many=True), **error_responses(401, 404)})
    def get(self, request: Request, target_id: str) -> Response:
        target = services.target_get_for_team(team=self.team, target_id=target_id)
        return Response([job_summary(job) for job in services.target_deliveries(target=target)])


class RuleListView(TeamAPIView):
    permission_classes = [CanManageNotifications]

    @extend_schema(operation_id="notification_rules_list", responses={200: RuleOut(many=True), **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response(RuleOut(Rule.objects.filter(team=self.team).select_related("target"), many=True).data)

    @extend_schema(operation_id="notification_rules_create", request=RuleIn, parameters=[LOCATION],
                   responses={201: RuleOut, **error_responses(400, 401, 403)})
    def post(self, request: Request) -> Response:
        data = _valid(RuleIn, request)
        rule = services.rule_create(team=self.team, target=data["target"], kind=data["kind"], handlers=data["handlers"],
                                    error_codes=data["error_codes"], final_only=data["final_only"],
                                    minutes=data["minutes"], enabled=data["enabled"], by=self.membership,
                                    who=self.who)
        return created(RuleOut(rule).data, "api-notification-rule", rule_id=rule.public_id)


class RuleDetailView(TeamAPIView):
    permission_classes = [CanManageNotifications]

    def _rule(self, request: Request, rule_id: str) -> Rule:
        rule = services.rule_get_for_team(team=self.team, rule_id=rule_id)
        self.check_object_permissions(request, rule)
        return rule

    @extend_schema(operation_id="notification_rules_retrieve", responses={200: RuleOut, **error_responses(401, 404)})
    def get(self, request: Request, rule_id: str) -> Response:
        return Response(RuleOut(self._rule(request, rule_id)).data)

    @extend_schema(operation_id="notification_rules_update", request=RulePatch,
                   responses={200: RuleOut, **error_responses(400, 401, 403, 404)})
    def patch(self, request: Request, rule_id: str) -> Response:
        rule = self._rule(request, rule_id)
        rule = services.rule_update(rule=rule, changes=_valid(RulePatch, request), by=self.membership,
                                     who=self.who)
        return Response(RuleOut(rule).data)

    @extend_schema(operation_id="notification_rules_destroy", responses={204: None, **error_responses(401, 403, 404)})
    def delete(self, request: Request, rule_id: str) -> Response:
        rule = self._rule(request, rule_id)
        no_input(request)
        services.rule_delete(rule=rule, by=self.membership, who=self.who)
        return Response(status=status.HTTP_204_NO_CONTENT)
