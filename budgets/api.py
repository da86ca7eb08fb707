"""The budget over the API: policy, usage, history, changes, held jobs, overrides. Every read
and write goes through budgets.selectors and budgets.services (the same ones the page uses)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response

from budgets import selectors, services
from budgets.models import BudgetPolicy, Override, PolicyChange
from budgets.money import AMOUNT_PATTERN, money_str
from pulse_site.api import (
    LOCATION,
    TeamAPIView,
    as_sent,
    created,
    error_responses,
    no_input,
    request_membership,
    valid_input,
)
from pulse_site.errors import FieldErrors, ValidationError
from pulse_site.teams.permissions import ManagersChange


class CanManageBudget(ManagersChange):
    """Every member reads; changing limits and overrides is for owners and admins in person:
    a job-submitting token must not be able to raise its own budget."""

    token_message = "API tokens cannot change the budget; an owner or admin does, signed in."
    role_message = "Only owners and admins change the budget."


class CanOverrideBudget(CanManageBudget):
    """Every member reads; making and ending overrides is for owners in person, a viewer, a member
    and an admin refused in budget_override_refusal's words (the page's and the service's), before
    the body is read. On one override's URL the check waits for the lookup, as ManagersChange's."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS or request_membership(request) is None:
            return super().has_permission(request, view)
        return bool(view.kwargs) or self._may_manage(request)

    def _may_manage(self, request: Request) -> bool:
        membership = request_membership(request)
        if membership is None:  # a token's call
            return super()._may_manage(request)
        refusal = services.budget_override_refusal(by=membership)
        if refusal is not None:
            self.message = refusal.message
        return refusal is None


# --- Shapes ----------------------------------------------------------------------------------

class CapOut(serializers.Serializer):
    daily = serializers.CharField(allow_null=True)
    weekly = serializers.CharField(allow_null=True)
    monthly = serializers.CharField(allow_null=True)


class PolicyOut(serializers.Serializer):
    daily_limit = serializers.CharField(allow_null=True, help_text="Null = unlimited; \"0\" = no paid work.")
    weekly_limit = serializers.CharField(allow_null=True)
    monthly_limit = serializers.CharField(allow_null=True)
    calls_per_minute = serializers.IntegerField(allow_null=True, help_text="Job starts in any rolling 60 s.")
    max_concurrent = serializers.IntegerField(allow_null=True)
    time_zone = serializers.CharField(help_text="IANA name; empty = the team's time zone.")
    effective_time_zone = serializers.CharField()
    week_start = serializers.IntegerField(help_text="0 = Monday … 6 = Sunday.")
    alert_thresholds = serializers.ListField(child=serializers.IntegerField())
    handler_caps = serializers.DictField(child=CapOut())
    over_budget = serializers.ChoiceField(choices=["hold", "fail"],
                                          help_text="A job over a money limit waits (hold) or fails at once with budget_exceeded.")
    updated_at = serializers.DateTimeField()
    updated_by = serializers.CharField(allow_null=True)
    notes = serializers.ListField(child=serializers.CharField(), help_text=(
        "Said about the settings, not refused: a limit above a longer one (never the one reached); after a "
        "PATCH that moved the time zone or week start, that the current windows start from nothing."))


MONEY = {"type": "string", "format": "decimal", "pattern": AMOUNT_PATTERN,
         "description": "A decimal string, e.g. \"10.50\" (a JSON number is refused: 0.1 as a float is not 0.1)."}
MONEY_OR_NULL = {**MONEY, "nullable": True, "description": "A decimal string, e.g. \"10.50\"; null: no limit."}
COUNT_OR_NULL = {"type": "integer", "nullable": True, "minimum": 1, "maximum": 1_000_000,
                 "description": "null: no limit."}


class PolicyIn(serializers.Serializer):
    """Every field optional; absent fields keep their value. Amounts are strings."""

    daily_limit = as_sent(MONEY_OR_NULL, required=False)
    weekly_limit = as_sent(MONEY_OR_NULL, required=False)
    monthly_limit = as_sent(MONEY_OR_NULL, required=False)
    calls_per_minute = as_sent(COUNT_OR_NULL, required=False)
    max_concurrent = as_sent(COUNT_OR_NULL, required=False)
    time_zone = as_sent({"type": "string", "description": "IANA name; empty: the team's."}, required=False)
    week_start = as_sent({"type": "integer", "minimum": 0, "maximum": 6, "description": "0 = Monday."},
                         required=False)
    alert_thresholds = as_sent({"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 100}},
                               required=False)
    handler_caps = as_sent({"type": "object", "additionalProperties": {"type": "object", "properties": {
        window: MONEY_OR_NULL for window in ("daily", "weekly", "monthly")}}}, required=False,
        help_text="{handler: {daily, weekly, monthly}}; all null removes the cap.")
    over_budget = as_sent(serializers.ChoiceField(choices=BudgetPolicy.OverBudget.choices), required=False,
                          help_text="hold (default) or fail.")


class WindowOut(serializers.Serializer):
    window = serializers.CharField()
    scope = serializers.CharField()
    start = serializers.DateTimeField()
    resets_at = serializers.DateTimeField()
    committed = serializers.CharField()
    reserved = serializers.CharField()
    spent = serializers.CharField()
    limit = serializers.CharField(allow_null=True)
    remaining = serializers.CharField(allow_null=True)
    percent = serializers.FloatField(allow_null=True)
    level = serializers.ChoiceField(choices=["ok", "warn", "over"])
    pace_per_hour = serializers.CharField(help_text="Charged at this scope in the last hour.")
    limit_reached_at = serializers.DateTimeField(
        allow_null=True, help_text="When the limit is reached if spending goes on at `pace_per_hour`, when that "
                                   "comes before `resets_at`; null without a limit, a pace or money left, or when it "
                                   "lasts until the reset.")


class UsageOut(serializers.Serializer):
    at = serializers.DateTimeField()
    time_zone = serializers.CharField()
    windows = WindowOut(many=True)
    handler_caps = serializers.DictField(child=WindowOut(many=True))
    calls_this_minute = serializers.IntegerField()
    calls_per_minute = serializers.IntegerField(allow_null=True)
    calls_remaining = serializers.IntegerField(allow_null=True)
    running = serializers.IntegerField()
    max_concurrent = serializers.IntegerField(allow_null=True)


class DayOut(serializers.Serializer):
    date = serializers.DateField()
    total = serializers.CharField()
    handlers = serializers.DictField(child=serializers.CharField())


class HistoryOut(serializers.Serializer):
    time_zone = serializers.CharField()
    handlers = serializers.ListField(child=serializers.CharField())
    days = DayOut(many=True)


class ChangeOut(serializers.Serializer):
    by = serializers.CharField(source="by_label")
    at = serializers.DateTimeField()
    before = serializers.DictField()
    after = serializers.DictField()


class HeldJobOut(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    handler = serializers.CharField()
    priority = serializers.IntegerField()
    cost_estimate = serializers.SerializerMethodField()
    hold_reasons = serializers.ListField(child=serializers.DictField())
    resume_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_cost_estimate(self, job: Any) -> str:
        return money_str(job.cost_estimate) or "0"


class OverrideOut(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    amount = serializers.SerializerMethodField()
    spent = serializers.SerializerMethodField()
    remaining = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField()
    reason = serializers.CharField()
    created_by = serializers.SerializerMethodField(help_text="Who made it (their username, kept if their user is "
                                                   "deleted since); null: an operator's command.")
    created_at = serializers.DateTimeField()

    def get_created_by(self, o: Override) -> str | None:
        return o.created_by_name or None

    def get_amount(self, o: Override) -> str:
        return money_str(o.amount) or "0"

    def get_spent(self, o: Override) -> str:
        return money_str(o.spent) or "0"

    def get_remaining(self, o: Override) -> str:
        return money_str(o.remaining) or "0"


class OverrideIn(serializers.Serializer):
    amount = as_sent(MONEY, help_text="The most the override lets through, as a string.")
    expires_at = serializers.DateTimeField()
    reason = serializers.CharField(max_length=500)


def policy_out(policy: BudgetPolicy, notes: list[str] | None = None) -> dict[str, Any]:
    return {
        "notes": services.limits_overruled(policy) if notes is None else notes,
        **services.policy_as_dict(policy),
        "effective_time_zone": str(services.policy_zone(policy)),
        "updated_at": policy.updated_at,
        "updated_by": policy.updated_by.get_username() if policy.updated_by else None,
    }


def _policy_changes(request: Request) -> dict[str, Any]:
    """The PATCH's settings as sent (the service, shared with the page's form, reads them), once
    each has the JSON type PolicyIn documents."""
    try:
        return valid_input(PolicyIn, request, unknown="Not a budget setting.")
    except ValidationError as exc:
        if not isinstance(request.data, dict):
            raise
        raise _with_the_services_refusals(exc, request.data) from None


def _with_the_services_refusals(exc: ValidationError, data: dict[str, Any]) -> ValidationError:
    """`exc` (settings of the wrong type, unknown ones) with the service's refusals of the other
    settings (checked, nothing written): one refusal names every bad setting, as the service's does."""
    errors, others = FieldErrors(), FieldErrors()
    errors.add(exc)
    with others.collect():
        services.budget_policy_validate(changes={name: value for name, value in data.items() if name not in exc.fields})
    for name, reasons in others.fields.items():
        if not any(name == done or name.startswith(f"{done}.") for done in exc.fields):
            for reason in reasons:
                errors.add_reason(name, reason)
    return ValidationError(exc.message, fields=errors.fields)


# --- Views -----------------------------------------------------------------------------------


class PolicyView(TeamAPIView):
    permission_classes = [CanManageBudget]

    @extend_schema(operation_id="budget_retrieve", responses={200: PolicyOut, **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response(PolicyOut(policy_out(services.budget_policy_get(team=self.team))).data)

    @extend_schema(operation_id="budget_update", request=PolicyIn,
                   responses={200: PolicyOut, **error_responses(400, 401, 403)})
    def patch(self, request: Request) -> Response:
        policy, notes = services.budget_policy_update_noted(team=self.team, changes=_policy_changes(request),
                                                           by=self.membership)
        policy.refresh_from_db()
        return Response(PolicyOut(policy_out(policy, notes)).data)


class UsageView(TeamAPIView):
    @extend_schema(operation_id="budget_usage", responses={200: UsageOut, **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response(UsageOut(selectors.budget_usage(team=self.team).as_dict()).data)


class HistoryView(TeamAPIView):
    @extend_schema(operation_id="budget_history", responses={200: HistoryOut, **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        history = selectors.budget_history(team=self.team)
        days = [{"date": d["date"], "total": money_str(d["total"]),
                 "handlers": {h: money_str(v) for h, v in d["handlers"].items()}} for d in history["days"]]
        return Response(HistoryOut({**history, "days": days}).data)


class ChangesView(TeamAPIView):
    @extend_schema(operation_id="budget_changes", description="The newest 50 changes of the budget's settings, newest first.",
                   responses={200: ChangeOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        changes: list[PolicyChange] = selectors.budget_changes(team=self.team)
        return Response(ChangeOut(changes, many=True).data)


class HeldJobsView(TeamAPIView):
    @extend_schema(operation_id="budget_held_jobs",
                   description="The first 100 jobs held by the budget, rate or concurrency, in the order they are "
                               "let through (priority, then age); the executor's `held` counts every held job.",
                   responses={200: HeldJobOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response(HeldJobOut(selectors.budget_held_jobs(team=self.team), many=True).data)


class OverrideListView(TeamAPIView):
    permission_classes = [CanOverrideBudget]

    @extend_schema(operation_id="budget_overrides_list", description="The newest 50 overrides, newest first.",
                   responses={200: OverrideOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response(OverrideOut(selectors.budget_overrides(team=self.team), many=True).data)

    @extend_schema(operation_id="budget_overrides_create", request=OverrideIn, parameters=[LOCATION],
                   responses={201: OverrideOut, **error_responses(400, 401, 403)})
    def post(self, request: Request) -> Response:
        data = valid_input(OverrideIn, request)
        override = services.budget_override_create(team=self.team, amount=data["amount"], expires_at=data["expires_at"],
                                                   reason=data["reason"], by=self.membership)
        return created(OverrideOut(override).data, "api-budget-override", override_id=override.public_id)


class OverrideDetailView(TeamAPIView):
    permission_classes = [CanOverrideBudget]

    @extend_schema(operation_id="budget_overrides_retrieve", responses={200: OverrideOut, **error_responses(401, 403, 404)})
    def get(self, request: Request, override_id: str) -> Response:
        return Response(OverrideOut(selectors.override_get_for_team(team=self.team, override_id=override_id)).data)


class OverrideEndView(TeamAPIView):
    permission_classes = [CanOverrideBudget]

    @extend_schema(operation_id="budget_overrides_end", request=None,
                   description="409 `override_ended`: it has ended already (expired, or ended before).",
                   responses={200: OverrideOut, **error_responses(401, 403, 404, 409)})
    def post(self, request: Request, override_id: str) -> Response:
        override = selectors.override_get_for_team(team=self.team, override_id=override_id)
        self.check_object_permissions(request, override)
        no_input(request)
        return Response(OverrideOut(services.budget_override_end(override=override, by=self.membership)).data)
