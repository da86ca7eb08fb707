"""Teams, memberships and tokens for staff. Every change with a rule behind it (last owner,
closing a removed member's or a revoked token's sockets, events) goes through the services,
so the admin offers those as actions instead of raw edits and deletes."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from pulse_site.admin_actions import act_on_selected, operator_name
from pulse_site.teams import services
from pulse_site.teams.models import ApiToken, Membership, Team


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


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "public_id", "time_zone", "created_at")
    search_fields = ("name", "slug", "public_id")
    search_help_text = "Part of a team's name, slug or id (TM_…)."
    readonly_fields = ("public_id", "slug", "created_at")
    fields = ("name", "public_id", "slug", "time_zone", "created_at")
    inlines = [MembershipInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # team_create also records the team.created event: use `manage.py pulse_create_team`.
        return False

    def save_model(self, request: HttpRequest, obj: Team, form: object, change: bool) -> None:
        # Through team_update: the team.changed event, and held jobs looked at again under a new
        # zone's windows (a raw save did neither).
        services.team_update(team=obj, changes={name: getattr(obj, name) for name in form.changed_data},  # type: ignore[attr-defined]
                             by=None, who=operator_name(request))


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
    fields = ("public_id", "name", "team", "prefix", "access", "created_by",
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

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        act_on_selected(self, request, queryset,
                        lambda t: services.token_revoke(token=t, by=None, who=operator_name(request)),
                        label="Revoked", noun="tokens")
