from __future__ import annotations

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from pulse_site.activity import FAMILIES, events_about
from pulse_site.admin_lists import LargeTableAdmin, every_team, named, row_number
from pulse_site.ids import PUBLIC_ID_RE
from pulse_site.live.models import RARE_EVENTS, Event

# The families RARE_EVENTS leaves out.
COMMON_FAMILIES = ("job", "execution")


class FamilyFilter(admin.SimpleListFilter):
    """The kinds' families, as the activity history offers them (not a DISTINCT over the outbox)."""

    title = "kind"
    parameter_name = "family"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(FAMILIES.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        family = self.value()
        if not family:
            return queryset
        kind = Q(kind__startswith=f"{family}.")
        if family in COMMON_FAMILIES:
            return queryset.filter(kind)  # nearly every event: the newest are found at once, walking the ids
        # The rare events' index (event_team_rare_kind), team by team, its condition word for word:
        # `kind LIKE 'budget.%'` alone read the whole outbox to find a few.
        return queryset.filter(RARE_EVENTS & kind, team__in=every_team())


@admin.register(Event)
class EventAdmin(LargeTableAdmin):
    """The outbox is an audit trail: staff read it, nobody edits history."""

    list_display = ("id", "created_at", "team", "kind", "subject")
    list_filter = (FamilyFilter, "team")
    ordering = ("-id",)  # the model's replay order is oldest first; an operator reads the newest
    sortable_by = ("id",)  # oldest first too, by the primary key (team by team under a filter: event_team_seq)
    search_help_text = ("An event's number finds that event; the id of what it is about (JB_…, SP_…, TK_…) its "
                        "events; a team's slug, or its start, the team's events. Kinds are the filter on the right.")
    list_select_related = ("team",)
    readonly_fields = ("id", "team", "kind", "subject", "payload", "created_at")

    def search_word(self, word: str) -> Q | None:
        if (number := row_number(word)) is not None:
            return Q(pk=number)
        if PUBLIC_ID_RE.match(word.upper()):
            return events_about(subject=word.upper())
        teams = named(word).teams
        return Q(team__in=teams) if teams else None  # event_team_seq

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
