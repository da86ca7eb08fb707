"""Teams, memberships and tokens for staff. Every change with a rule behind it (last owner,
closing a removed member's or a revoked token's sockets, events) goes through the services,
so the admin offers those as actions instead of raw edits and deletes. A team's page also sets
its retention ages (team_update) and its handlers' budget caps (budget_policy_update), checked by
those services before saving."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

# The team's page shows its budget caps: the admin is an interface, composing the apps' services
# (the teams app itself never imports budgets).
from budgets.admin import HandlerCapInline
from pulse_site.admin_actions import ACTION_MAX, act_on_selected, operator_name
from pulse_site.errors import Conflict, PulseError
from pulse_site.teams import services
from pulse_site.teams.models import RETENTION_KINDS, ApiToken, Membership, Team, retention_default


admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class PulseUserAdmin(UserAdmin):
    """Django's, saying what its search looks at."""

    search_help_text = "Part of a username, a first or last name, or an email address."


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ("user", "role", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        # Each row shows its user and is titled "<user> in <team>": read with it, not once a row.
        return super().get_queryset(request).select_related("user", "team")


_RETENTION_LABELS = {"job": "Finished jobs", "execution": "Schedule executions", "event": "Live events"}


class TeamForm(forms.ModelForm):
    """The team's settings, checked by the team service (team_validate) field by field. The ages
    are text here, so that every refusal is the service's, in its words."""

    job_retention_days = forms.CharField(label=_RETENTION_LABELS["job"], required=False)
    execution_retention_days = forms.CharField(label=_RETENTION_LABELS["execution"], required=False)
    event_retention_days = forms.CharField(label=_RETENTION_LABELS["event"], required=False)

    class Meta:
        model = Team
        fields = ["name", "time_zone", *services.RETENTION_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for kind in RETENTION_KINDS:
            name = f"{kind}_retention_days"
            # As text, so that an unchanged age reads as unchanged (45 is not "45").
            self.initial[name] = "" if self.initial.get(name) is None else str(self.initial[name])
            if name in self.fields:
                self.fields[name].help_text = f"Days; empty: the default ({retention_default(kind)})."

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        changes = {name: data[name] for name in self.changed_data if name in data}
        try:
            data.update(services.team_validate(changes=changes))
        except PulseError as exc:
            for field, reasons in exc.fields.items():
                for reason in reasons:
                    self.add_error(field if field in self.fields else None, reason)
        return data


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    form = TeamForm
    list_display = ("name", "slug", "public_id", "time_zone", "created_at", "retired_at")
    list_filter = (("retired_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "slug", "public_id")
    search_help_text = "Part of a team's name, slug or id (TM_…)."
    readonly_fields = ("public_id", "slug", "created_at", "retired_at", "retired_by")
    fieldsets = [
        (None, {"fields": ("name", "public_id", "slug", "time_zone", "created_at", "retired_at", "retired_by")}),
        ("Retention", {"fields": services.RETENTION_FIELDS,
                       "description": "How long the team's finished jobs (with their attempts and logs), schedule "
                                      "executions and live events are kept, as the team's owners set it on the "
                                      "team page. Nothing unfinished is pruned."}),
    ]
    inlines = [MembershipInline, HandlerCapInline]
    actions = ["retire", "reactivate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # team_create also records the team.created event: use `manage.py pulse_create_team`.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Django's delete takes the rows without the services: running jobs left to their workers,
        # tokens without their sockets closed. It was refused for a team with any history (which
        # cannot be deleted row by row) and let through once that had aged out: refused for all.
        return False

    def save_model(self, request: HttpRequest, obj: Team, form: forms.ModelForm, change: bool) -> None:
        # Through team_update: the team.changed and team.retention events naming the operator, and
        # held jobs looked at again under a new zone's windows (a raw save did none of it).
        services.team_update(team=obj, changes={name: form.cleaned_data[name] for name in form.changed_data},
                             by=None, who=operator_name(request))

    @admin.action(description="Retire selected teams…", permissions=["change"])
    def retire(self, request: HttpRequest, queryset: QuerySet[Team]) -> TemplateResponse | None:
        """A page saying what will happen to each team first; its Yes runs team_retire on each."""
        if request.POST.get("confirm") != "yes":
            teams = list(queryset.order_by("pk")[:ACTION_MAX + 1])
            if len(teams) > ACTION_MAX:
                # act_on_selected says so, touching none.
                act_on_selected(self, request, queryset, lambda team: None, label="Retire", noun="teams")
                return None
            return TemplateResponse(request, "admin/teams/team/retire_confirmation.html", {
                **self.admin_site.each_context(request), "title": "Retire these teams?", "opts": self.model._meta,
                "queryset": teams, "plans": [services.team_retire_preview(team=team) for team in teams],
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME})
        done: list[services.Retirement] = []
        act_on_selected(self, request, queryset,
                        lambda team: done.append(services.team_retire(team=team, who=operator_name(request))),
                        label="Retired", noun="teams")
        for retirement in done:
            self.message_user(request, f"{retirement.team.name}: {retirement.counts()}.")
        return None

    @admin.action(description="Reactivate selected teams", permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Team]) -> None:
        def reactivate_one(team: Team) -> None:
            if not services.team_reactivate(team=team, who=operator_name(request)):
                raise Conflict("it is not retired.")

        act_on_selected(self, request, queryset, reactivate_one, label="Reactivated", noun="teams")
        self.message_user(request, "Their tokens stay revoked and their schedules paused until a person resumes "
                                   "each; their cancelled jobs can be retried.")


def _set_role_action(role: str, label: str):
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        act_on_selected(
            modeladmin, request, queryset,
            lambda m: services.membership_set_role(membership=m, role=role, by=None, who=operator_name(request)),
            label=f"Made {label.lower()}", noun="memberships")

    action.__name__ = f"make_{role}"
    # permissions: without it Django offers the action to anyone who may view memberships.
    return admin.action(description=f"Make {label.lower()}", permissions=["change"])(action)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "team", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__username", "team__name", "team__slug")
    search_help_text = "Part of a member's username, or of the team's name or slug."
    list_select_related = ("user", "team")
    readonly_fields = ("team", "user", "role", "created_at")
    actions = [*(_set_role_action(value, label) for value, label in Membership.Role.choices), "remove"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the team page or `manage.py pulse_add_member`

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the "Remove from team" action keeps the last owner and closes sockets

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Actions need change permission on the changelist; rows themselves stay read-only.
        return obj is None and super().has_change_permission(request, obj)

    @admin.action(description="Remove from team", permissions=["change"])
    def remove(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        act_on_selected(self, request, queryset,
                        lambda m: services.membership_remove(membership=m, by=None, who=operator_name(request)),
                        label="Removed", noun="memberships")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "prefix", "access", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("access", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix", "public_id", "team__name", "team__slug")
    search_help_text = "Part of a token's name, prefix (pulse_…) or id (TK_…), or of its team's name or slug."
    list_select_related = ("team",)
    # secret_hash is left out on purpose: the digest of a live token is never displayed.
    fields = ("public_id", "name", "team", "prefix", "access", "created_by_name", "state",
              "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    exclude = ("secret_hash",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the team page or `manage.py pulse_create_token`, which show the secret once

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # revoke instead: it also closes the token's open sockets

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="made by")
    def created_by_name(self, token: ApiToken) -> str:
        # The name kept with the token: its maker's user may be deleted since.
        return token.created_by_name or "operator (a command)"

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return token.state

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        act_on_selected(self, request, queryset,
                        lambda t: services.token_revoke(token=t, by=None, who=operator_name(request)),
                        label="Revoked", noun="tokens")
