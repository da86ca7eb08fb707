from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from pulse_site.notifications.models import HoldTimer, Rule, Target


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    list_display = ["public_id", "team", "name", "kind", "address", "enabled", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["public_id", "name", "address", "team__name"]
    readonly_fields = ["public_id", "secret", "created_at"]


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ["public_id", "team", "kind", "target", "minutes", "final_only", "enabled", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["public_id", "team__name", "target__name"]


@admin.register(HoldTimer)
class HoldTimerAdmin(admin.ModelAdmin):
    """Holds that held_long rules are timing; written and cleared by the match step only."""

    list_display = ["job_id", "team", "rule", "handler", "held_since", "due_at"]
    search_fields = ["job_id", "team__name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
