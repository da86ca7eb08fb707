from __future__ import annotations

from django.contrib import admin

from pulse_site.notifications.models import Rule, Target


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    list_display = ["public_id", "team", "name", "kind", "address", "enabled", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["public_id", "name", "address", "team__name"]
    readonly_fields = ["public_id", "secret", "created_at"]


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ["public_id", "team", "kind", "target", "final_only", "created_at"]
    list_filter = ["kind"]
    search_fields = ["public_id", "team__name", "target__name"]
