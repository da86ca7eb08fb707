"""Operators' view of every team's notifications. Targets and rules are made, changed and deleted
through the notifications services, as from the team's page and API: the same checks (an address
the deliveries would refuse, a rule pointing at another team's target), the team's events naming
the operator, and a disabled rule's hold timers dropped. Raw edits did none of that."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from pulse_site.admin_actions import operator_name, service_action
from pulse_site.errors import PulseError
from pulse_site.notifications.models import HoldTimer, Rule, Target
from pulse_site.notifications.services import (
    rule_create,
    rule_delete,
    rule_update,
    rule_validate,
    target_create,
    target_delete,
    target_update,
    target_validate,
)

TARGET_FIELDS = ["name", "kind", "address", "enabled"]
RULE_FIELDS = ["target", "handlers", "error_codes", "final_only", "minutes", "enabled"]



def _refusals_on_fields(form: forms.ModelForm, exc: PulseError) -> None:
    for field, reasons in (exc.fields or {"": [exc.message]}).items():
        for reason in reasons:
            form.add_error(field if field in form.fields else None, reason)


def _by_service(service, noun: str):
    """The delete action: the services take who did it as `who`, the member as `by` (None: staff)."""
    return service_action(lambda *, by, **row: service(**row, by=None, who=by), "Delete", arg=noun, noun=f"{noun}s")


class TargetForm(forms.ModelForm):
    class Meta:
        model = Target
        fields = ["team", *TARGET_FIELDS]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        team = data.get("team") or (self.instance.team if self.instance.pk else None)
        if team is not None and not {"name", "kind", "address"} & set(self.errors):
            try:
                target_validate(team=team, name=data.get("name", ""), kind=data.get("kind", ""),
                                address=data.get("address", ""), target=self.instance if self.instance.pk else None)
            except PulseError as exc:
                _refusals_on_fields(self, exc)
        return data


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    form = TargetForm
    list_display = ["public_id", "team", "name", "kind", "address", "enabled", "created_by", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["public_id", "name", "address", "team__name"]
    search_help_text = "Part of a target's id, name or address, or of its team's name."
    list_select_related = ["team"]
    readonly_fields = ["public_id", "secret", "created_by", "created_at"]
    actions = [_by_service(target_delete, "target")]

    def get_fields(self, request: HttpRequest, obj: Target | None = None) -> tuple[str, ...]:
        return ("team", *TARGET_FIELDS[:3]) if obj is None else ("public_id", "team", *TARGET_FIELDS, *self.readonly_fields[1:])

    def get_readonly_fields(self, request: HttpRequest, obj: Target | None = None) -> list[str]:
        # A target stays in its team: its rules and watches are the team's.
        return [*self.readonly_fields, "team"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the "Delete" action: through target_delete, with its event

    def save_model(self, request: HttpRequest, obj: Target, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        if change:
            # From the row as stored: the form has already set the new values on `obj`, and the
            # service tells what changed by comparing.
            saved = target_update(target=Target.objects.get(pk=obj.pk), by=None, who=operator_name(request),
                                  changes={name: data[name] for name in TARGET_FIELDS})
        else:
            saved = target_create(team=data["team"], name=data["name"], kind=data["kind"], address=data["address"],
                                  by=None, created_by=operator_name(request))
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if not k.startswith("_")})


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = ["team", "kind", *RULE_FIELDS]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        rule = self.instance if self.instance.pk else None
        team = rule.team if rule else data.get("team")
        kind = rule.kind if rule else data.get("kind")
        if team is None or kind is None or "target" not in data:
            return data
        try:
            rule_validate(team=team, target=data["target"], kind=kind, handlers=data.get("handlers"),
                          minutes=data.get("minutes"), error_codes=data.get("error_codes") or [],
                          check_handlers=rule is None or data.get("handlers") != rule.handlers)
        except PulseError as exc:
            _refusals_on_fields(self, exc)
        return data


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = ["public_id", "team", "kind", "target", "minutes", "final_only", "enabled", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["public_id", "team__name", "target__name"]
    search_help_text = "Part of a rule's id, its team's name or its target's name."
    list_select_related = ["team", "target"]
    actions = [_by_service(rule_delete, "rule")]

    def get_fields(self, request: HttpRequest, obj: Rule | None = None) -> tuple[str, ...]:
        return ("team", "kind", *RULE_FIELDS) if obj is None else ("public_id", "team", "kind", *RULE_FIELDS, "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Rule | None = None) -> list[str]:
        # A rule's kind is what it is (delete it and add another); it stays in its team.
        return ["public_id", "team", "kind", "created_at"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the "Delete" action: through rule_delete, with its event

    def get_form(self, request: HttpRequest, obj: Rule | None = None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change=change, **kwargs)
        field = form.base_fields["target"]
        assert isinstance(field, forms.ModelChoiceField)
        # Targets of every team read alike ("ops (email)"): say whose; a rule's own team's only.
        field.queryset = Target.objects.select_related("team") if obj is None else Target.objects.filter(team=obj.team)

        def label(target: Target) -> str:
            return f"{target.team.name}: {target}" if obj is None else str(target)

        field.label_from_instance = label  # type: ignore[method-assign,assignment]  # (as Django's docs do)
        return form

    def save_model(self, request: HttpRequest, obj: Rule, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        values: dict[str, Any] = {name: data.get(name) for name in RULE_FIELDS}
        values["target"] = values["target"].public_id
        values["handlers"], values["error_codes"] = values["handlers"] or [], values["error_codes"] or []
        if change:
            stored = Rule.objects.select_related("team", "target").get(pk=obj.pk)
            if values["handlers"] == stored.handlers:
                del values["handlers"]  # unchanged: not checked again (one since retired is kept)
            saved = rule_update(rule=stored, changes=values, by=None, who=operator_name(request))
        else:
            saved = rule_create(team=data["team"], kind=data["kind"], by=None, who=operator_name(request), **values)
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if not k.startswith("_")})


@admin.register(HoldTimer)
class HoldTimerAdmin(admin.ModelAdmin):
    """Holds that held_long rules are timing; written and cleared by the match step only."""

    list_display = ["job_id", "team", "rule", "handler", "held_since", "due_at"]
    search_fields = ["job_id", "team__name"]
    search_help_text = "Part of a held job's id or its team's name (the holds being timed: a small table)."
    list_select_related = ["team", "rule"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # cleared by the match step (the hold ended, the rule disabled or deleted)
