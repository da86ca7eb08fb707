from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from pulse_site.live.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """The outbox is an audit trail: staff read it, nobody edits history."""

    list_display = ("id", "created_at", "team", "kind", "subject")
    list_filter = ("kind", "team")
    search_fields = ("subject",)
    list_select_related = ("team",)
    readonly_fields = ("id", "team", "kind", "subject", "payload", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
