"""Operators' view of budgets. Policy edits and new overrides go through budgets.services (so
they are validated, recorded and release held jobs exactly as from the dashboard); usage, the
ledger, changes and alerts are read-only: they are facts, not settings."""

from __future__ import annotations

from typing import Any, cast
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from budgets.models import Alert, BudgetPolicy, HandlerCap, Ledger, Override, PolicyChange, Usage, WindowKind
from budgets.money import money_str, money_text
from budgets.windows import KINDS
from budgets.services import (
    CAP_FIELDS,
    POLICY_MONEY_FIELDS,
    budget_override_create,
    budget_override_end,
    budget_override_validate,
    budget_policy_update,
    budget_policy_validate,
    policy_zone,
)
from pulse_site.admin_actions import act_on_selected
from pulse_site.admin_lists import LargeTableAdmin, choices_filter, every_team, named, public_id_in, row_number
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


def _budget_zone(row: Any) -> ZoneInfo:
    """The zone of `row`'s budget windows (the policy's, else its team's), read with the row
    (list_select_related: team, team__budget_policy)."""
    try:
        policy = row.team.budget_policy
    except BudgetPolicy.DoesNotExist:
        return ZoneInfo(row.team.time_zone or "UTC")
    return policy_zone(policy, row.team)


def _in_budget_zone(row: Any, field: str) -> str:
    """A moment of `row` in its budget's zone, named ("2026-12-07 00:00 Asia/Tokyo"): in UTC,
    unnamed, a Tokyo team's day read "Dec. 6, 2026, 3 p.m.", its start nowhere to be seen."""
    moment = getattr(row, field)
    if moment is None:
        return "-"
    zone = _budget_zone(row)
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"


class BudgetColumns:
    """The columns, and change page fields, of a budget row: its moments in its budget's zone, its
    money as people read it (the table's micro-units read 2500000 for 2.5)."""

    def row_team(self, row: Any) -> None:
        return None  # each moment names its budget's zone, which may be other than the team's

    @admin.display(description="at", ordering="at")
    def at_zoned(self, row: Any) -> str:
        return _in_budget_zone(row, "at")

    @admin.display(description="window start", ordering="window_start")
    def window_start_zoned(self, row: Any) -> str:
        return _in_budget_zone(row, "window_start")

    @admin.display(description="window end", ordering="window_end")
    def window_end_zoned(self, row: Any) -> str:
        return _in_budget_zone(row, "window_end")

    @admin.display(description="amount")
    def amount_money(self, row: Any) -> str | None:
        return money_text(row.amount)

    @admin.display(description="committed")
    def committed_money(self, row: Any) -> str | None:
        return money_text(row.committed)

    @admin.display(description="reserved")
    def reserved_money(self, row: Any) -> str | None:
        return money_text(row.reserved)

    @admin.display(description="spent")
    def spent_money(self, row: Any) -> str | None:
        return money_text(row.spent)

    @admin.display(description="limit")
    def limit_money(self, row: Any) -> str | None:
        return money_text(row.limit)


# Each row's zone is its team's or its budget's: read with the row, not once a row.
ZONED = ["team", "team__budget_policy"]


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
    search_help_text = "Part of a team's name or slug (one policy per team: a small table)."
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
    """Every team's caps at a glance; they are set on the team's page (HandlerCapInline)."""

    list_display = ["team", "handler", _money_column("daily_limit", "daily"), _money_column("weekly_limit", "weekly"),
                    _money_column("monthly_limit", "monthly")]
    list_filter = ["team"]
    search_fields = ["handler", "team__name"]
    search_help_text = "Part of a handler's or a team's name (a small table). Caps are set on the team's page."


def _cap_amount(name: str) -> str:
    return f"{name}_amount"


class HandlerCapForm(forms.ModelForm):
    """One handler's cap as the budget page takes it (money as people write it, empty for no limit
    in that window), checked by the budget service, each refusal on its field."""

    daily_amount = forms.CharField(label="Daily cap", required=False)
    weekly_amount = forms.CharField(label="Weekly cap", required=False)
    monthly_amount = forms.CharField(label="Monthly cap", required=False)

    class Meta:
        model = HandlerCap
        fields = ["handler"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, kind in zip(CAP_FIELDS, KINDS, strict=True):
            self.initial[_cap_amount(name)] = money_str(self.instance.limit_for(kind)) or ""

    def limits(self) -> dict[str, str | None]:
        """The cap's limits as budget_policy_update takes them: {"daily": "1.5", "weekly": None, …}."""
        return {name: (self.cleaned_data.get(_cap_amount(name)) or "").strip() or None for name in CAP_FIELDS}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        handler = data.get("handler")
        if not handler:
            return data
        if self.instance.pk is None and not any(self.limits().values()):
            self.add_error(None, "Give at least one limit (a cap with none is no cap).")
        try:
            budget_policy_validate(changes={"handler_caps": {handler: self.limits()}})
        except PulseError as exc:
            # Named by their path: handler_caps.<handler> (the name), handler_caps.<handler>.daily, …
            for name, reasons in exc.fields.items():
                window = name.removeprefix(f"handler_caps.{handler}").lstrip(".")
                key = _cap_amount(window) if window in CAP_FIELDS else "handler"
                for reason in reasons:
                    self.add_error(key, reason)
        return data


class HandlerCapFormSet(forms.BaseInlineFormSet):
    """Saved through budget_policy_update, as the budget page saves a cap: the same checks, the
    team's budget.policy event and change history naming the operator, held jobs looked at again.
    A raw save of the rows did none of that."""

    operator: Any = None  # the staff user saving (HandlerCapInline.get_formset)

    def save(self, commit: bool = True) -> list[HandlerCap]:
        caps: dict[str, dict[str, str | None]] = {}
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
        deleted = self.deleted_forms if self.can_delete else []
        for form in self.initial_forms:
            assert isinstance(form, HandlerCapForm)
            stored = form.initial.get("handler") or ""
            if form in deleted:
                caps[stored] = {}
                self.deleted_objects.append(form.instance)
            elif form.has_changed():
                if form.cleaned_data["handler"] != stored:
                    caps[stored] = {}  # renamed: the old handler's cap goes
                caps[form.cleaned_data["handler"]] = form.limits()
                self.changed_objects.append((form.instance, form.changed_data))
        for form in self.extra_forms:
            assert isinstance(form, HandlerCapForm)
            if form.has_changed() and form not in deleted:
                caps[form.cleaned_data["handler"]] = form.limits()
                self.new_objects.append(form.instance)
        if caps:
            budget_policy_update(team=self.instance, changes={"handler_caps": caps}, by=None, user=self.operator)
        return [obj for obj, _ in self.changed_objects] + self.new_objects


class HandlerCapInline(admin.TabularInline):
    """The team's handler caps on its admin page (pulse_site.teams.admin.TeamAdmin)."""

    model = HandlerCap
    form = HandlerCapForm
    formset = HandlerCapFormSet
    fields = ("handler", "daily_amount", "weekly_amount", "monthly_amount")
    extra = 1

    def get_queryset(self, request: HttpRequest) -> QuerySet[HandlerCap]:
        # Each row is titled "<handler> cap of <team>": the team read with it, not once a row.
        return super().get_queryset(request).select_related("team")

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        # A class of its own, made for this request.
        formset = cast(type[HandlerCapFormSet], super().get_formset(request, obj, **kwargs))
        formset.operator = signed_in_user(request)
        return formset

    # Shown, read-only, to whom may only view caps.
    @admin.display(description="Daily cap")
    def daily_amount(self, cap: HandlerCap) -> str:
        return money_str(cap.daily_limit) or "no limit"

    @admin.display(description="Weekly cap")
    def weekly_amount(self, cap: HandlerCap) -> str:
        return money_str(cap.weekly_limit) or "no limit"

    @admin.display(description="Monthly cap")
    def monthly_amount(self, cap: HandlerCap) -> str:
        return money_str(cap.monthly_limit) or "no limit"


class LargeReadOnlyAdmin(LargeTableAdmin, ReadOnlyAdmin):
    pass


@admin.register(Usage)
class UsageAdmin(BudgetColumns, LargeReadOnlyAdmin):
    list_display = ["team", "scope", "kind", "window_start_zoned", "window_end_zoned", "committed_money",
                    "reserved_money"]
    fields = readonly_fields = ("team", "scope", "kind", "window_start_zoned", "window_end_zoned", "committed_money",
                                "reserved_money")
    list_filter = ["kind", "team"]
    list_select_related = ZONED
    # The newest windows first, by the primary key: the model's order (team, scope, …) sorts by the
    # team's name, every window read and sorted for each page.
    ordering = ("-id",)
    search_help_text = ("A team's slug, or its start, finds the team's windows; a handler's name, or its start, its "
                        "caps' windows; a number, the row of that number. Words narrow each other.")

    def search_word(self, word: str) -> Q | None:
        if (number := row_number(word)) is not None:
            return Q(pk=number)
        name = named(word)
        if name.teams:
            return Q(team__in=name.teams)  # usage_unique_window leads with the team
        # usage_unique_window (team, scope, …), team by team.
        return Q(team__in=every_team(), scope__in=name.handlers) if name.handlers else None


@admin.register(Ledger)
class LedgerAdmin(BudgetColumns, LargeReadOnlyAdmin):
    list_display = ["at_zoned", "team", "job_id", "attempt", "kind", "scope", "window_kind", "window_start_zoned",
                    "amount_money"]
    fields = readonly_fields = ("at_zoned", "team", "job_id", "handler", "attempt", "kind", "scope", "window_kind",
                                "window_start_zoned", "window_end_zoned", "amount_money", "override")
    list_filter = ["kind", choices_filter("window_kind", "window kind", WindowKind.choices), "team"]
    list_select_related = ZONED
    search_help_text = ("A job's id (JB_…) finds its entries; an override's id (OV_…) what it let through; a team's "
                        "slug, or its start, the team's entries; a number, the entry of that number.")

    def search_word(self, word: str) -> Q | None:
        if job_id := public_id_in(word, "JB"):
            return Q(job_id=job_id)  # ledger_unique_entry leads with job_id
        if override_id := public_id_in(word, "OV"):
            return Q(override__in=Override.objects.filter(public_id=override_id).values("pk"))
        if (number := row_number(word)) is not None:
            return Q(pk=number)
        teams = named(word).teams
        return Q(team__in=teams) if teams else None  # ledger_team_window, ledger_team_kind_at


@admin.register(PolicyChange)
class PolicyChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "team", "by_label"]
    list_filter = ["team"]


@admin.register(Alert)
class AlertAdmin(BudgetColumns, ReadOnlyAdmin):
    list_display = ["at_zoned", "team", "scope", "window_kind", "window_start_zoned", "threshold", "spent_money",
                    "limit_money"]
    fields = readonly_fields = ("at_zoned", "team", "scope", "window_kind", "window_start_zoned", "window_end_zoned",
                                "threshold", "spent_money", "limit_money")
    list_filter = ["threshold", "window_kind", "team"]
    list_select_related = ZONED


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
class OverrideAdmin(BudgetColumns, admin.ModelAdmin):
    list_display = ["public_id", "team", _money_column("amount", "amount"), _money_column("spent", "spent"),
                    "expires_at", "reason", "created_by", "created_at"]
    list_filter = ["team"]
    search_fields = ["public_id", "reason", "team__name"]
    search_help_text = "Part of an override's id, its reason or its team's name (a small table)."
    list_select_related = ["team", "created_by"]
    actions = ["end_selected"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = OverrideForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("team", "amount_text", "expires_at", "reason")
        return ("public_id", "team", "amount_money", "spent_money", "expires_at", "reason", "created_by", "created_at")

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
        """As the budget page's End: what an override already let through stays counted. Those
        that have ended are left, counted (one ending meanwhile is refused by the service, named)."""
        act_on_selected(self, request, queryset,
                        lambda override: budget_override_end(override=override, by=None, user=signed_in_user(request)),
                        label="Ended", noun="overrides",
                        only=(Q(expires_at__gt=timezone.now()), "they had already ended"))
