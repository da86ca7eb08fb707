from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from pulse_site.activity import FAMILIES
from pulse_site.admin_lists import LargeTableAdmin
from pulse_site.live.models import Event


class FamilyFilter(admin.SimpleListFilter):
    """The kinds' families, as the activity history offers them (not a DISTINCT over the outbox)."""

    title = "kind"
    parameter_name = "family"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(FAMILIES.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        return queryset.filter(kind__startswith=f"{self.value()}.") if self.value() else queryset


@admin.register(Event)
class EventAdmin(LargeTableAdmin):
    """The outbox is an audit trail: staff read it, nobody edits history."""

    list_display = ("id", "created_at", "team", "kind", "subject")
    list_filter = (FamilyFilter, "team")
    ordering = ("-id",)  # the model's replay order is oldest first; an operator reads the newest
    search_fields = ("subject",)
    list_select_related = ("team",)
    readonly_fields = ("id", "team", "kind", "subject", "payload", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
