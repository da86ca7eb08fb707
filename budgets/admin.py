"""Operators' view of budgets. Policy edits and new overrides go through budgets.services (so
they are validated, recorded and release held jobs exactly as from the dashboard); usage, the
ledger, changes and alerts are read-only: they are facts, not settings."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from budgets.models import Alert, BudgetPolicy, HandlerCap, Ledger, Override, PolicyChange, Usage, WindowKind
from budgets.money import money_str, money_text
from budgets.services import (
    POLICY_MONEY_FIELDS,
    budget_override_create,
    budget_override_end,
    budget_override_validate,
    budget_policy_update,
    budget_policy_validate,
)
from pulse_site.admin_actions import action_logged
from pulse_site.admin_lists import LargeTableAdmin, choices_filter
from pulse_site.errors import PulseError
from pulse_site.teams.selectors import signed_in_user


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _money_column(field: str, title: str):
    def column(obj: Any) -> str:
        value = money_text(getattr(obj, field))
        return "unlimited" if value is None else value

    column.short_description = title  # type: ignore[attr-defined]
    return column


POLICY_FIELDS = ("calls_per_minute", "max_concurrent", "time_zone", "week_start", "alert_thresholds")


class PolicyForm(forms.ModelForm):
    daily_amount = forms.CharField(label="Daily limit", required=False, help_text="Empty = unlimited, 0 = no paid work.")
    weekly_amount = forms.CharField(label="Weekly limit", required=False)
    monthly_amount = forms.CharField(label="Monthly limit", required=False)

    class Meta:
        model = BudgetPolicy
        fields = list(POLICY_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in POLICY_MONEY_FIELDS:
            self.fields[name.replace("_limit", "_amount")].initial = money_str(getattr(self.instance, name)) or ""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            budget_policy_validate(changes=self.changes())
        except PulseError as exc:
            # The service's refusals, each on its field: they were a 500 when save_model met them.
            for name, reasons in exc.fields.items():
                key = name.replace("_limit", "_amount")
                for reason in reasons:
                    self.add_error(key if key in self.fields else None, reason)
        return data

    def changes(self) -> dict[str, Any]:
        """The policy changes the form's valid fields ask for, as budget_policy_update takes them."""
        data = self.cleaned_data
        changes: dict[str, Any] = {name: (data.get(name.replace("_limit", "_amount")) or "").strip() or None
                                   for name in POLICY_MONEY_FIELDS if name.replace("_limit", "_amount") in data}
        changes.update({name: data[name] for name in POLICY_FIELDS if name in data})
        return changes


@admin.register(BudgetPolicy)
class BudgetPolicyAdmin(admin.ModelAdmin):
    form = PolicyForm
    list_display = ["team", _money_column("daily_limit", "daily"), _money_column("weekly_limit", "weekly"),
                    _money_column("monthly_limit", "monthly"), "calls_per_minute", "max_concurrent", "running",
                    "updated_at"]
    search_fields = ["team__name", "team__slug"]
    fields = ["team", "daily_amount", "weekly_amount", "monthly_amount", "calls_per_minute", "max_concurrent",
              "time_zone", "week_start", "alert_thresholds", "running", "updated_by", "updated_at"]
    readonly_fields = ["team", "running", "updated_by", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created with the team's first job or first budget change

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # a deleted policy lifted every limit unrecorded: empty its limits instead

    def save_model(self, request: HttpRequest, obj: BudgetPolicy, form: PolicyForm, change: bool) -> None:
        budget_policy_update(team=obj.team, changes=form.changes(), by=None, user=signed_in_user(request))


@admin.register(HandlerCap)
class HandlerCapAdmin(ReadOnlyAdmin):
    list_display = ["team", "handler", _money_column("daily_limit", "daily"), _money_column("weekly_limit", "weekly"),
                    _money_column("monthly_limit", "monthly")]
    list_filter = ["team"]
    search_fields = ["handler", "team__name"]


class LargeReadOnlyAdmin(LargeTableAdmin, ReadOnlyAdmin):
    pass


@admin.register(Usage)
class UsageAdmin(LargeReadOnlyAdmin):
    list_display = ["team", "scope", "kind", "window_start", "window_end", _money_column("committed", "committed"),
                    _money_column("reserved", "reserved")]
    list_filter = ["kind", "team"]
    search_fields = ["scope", "team__name"]


@admin.register(Ledger)
class LedgerAdmin(LargeReadOnlyAdmin):
    list_display = ["at", "team", "job_id", "attempt", "kind", "scope", "window_kind", "window_start",
                    _money_column("amount", "amount")]
    list_filter = ["kind", choices_filter("window_kind", "window kind", WindowKind.choices), "team"]
    search_fields = ["job_id", "scope"]


@admin.register(PolicyChange)
class PolicyChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "team", "by_label"]
    list_filter = ["team"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["at", "team", "scope", "window_kind", "window_start", "threshold", _money_column("spent", "spent"),
                    _money_column("limit", "limit")]
    list_filter = ["threshold", "window_kind", "team"]


class OverrideForm(forms.ModelForm):
    amount_text = forms.CharField(label="Amount", help_text="The most it lets through, e.g. 25.00.")

    class Meta:
        model = Override
        fields = ["team", "expires_at", "reason"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if {"amount_text", "expires_at", "reason"} <= set(data):
            try:
                budget_override_validate(amount=data["amount_text"], expires_at=data["expires_at"], reason=data["reason"])
            except PulseError as exc:
                # Each on its field: a zero amount or a far expiry was a 500 when the create met it.
                for name, reasons in exc.fields.items():
                    key = "amount_text" if name == "amount" else name
                    for reason in reasons:
                        self.add_error(key if key in self.fields else None, reason)
        return data


@admin.register(Override)
class OverrideAdmin(admin.ModelAdmin):
    list_display = ["public_id", "team", _money_column("amount", "amount"), _money_column("spent", "spent"),
                    "expires_at", "reason", "created_by", "created_at"]
    list_filter = ["team"]
    search_fields = ["public_id", "reason", "team__name"]
    list_select_related = ["team", "created_by"]
    actions = ["end_selected"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = OverrideForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("team", "amount_text", "expires_at", "reason")
        return ("public_id", "team", "amount", "spent", "expires_at", "reason", "created_by", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return () if obj is None else self.get_fields(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the record of an override stays; end one from the budget page or API

    def save_model(self, request: HttpRequest, obj: Override, form: forms.ModelForm, change: bool) -> None:
        if change:
            return
        data = form.cleaned_data
        created = budget_override_create(team=data["team"], amount=data["amount_text"], expires_at=data["expires_at"],
                                         reason=data["reason"], by=None, user=signed_in_user(request))
        obj.pk, obj.public_id = created.pk, created.public_id

    @admin.action(description="End selected overrides now", permissions=["change"])
    def end_selected(self, request: HttpRequest, queryset: QuerySet[Override]) -> None:
        """As the budget page's End: what an override already let through stays counted."""
        done = 0
        for override in queryset.filter(expires_at__gt=timezone.now()).order_by("pk"):
            budget_override_end(override=override, by=None, user=signed_in_user(request))
            action_logged(self, request, override, "Ended")
            done += 1
        self.message_user(request, f"Ended {done} override(s).", messages.SUCCESS)
