"""Changelists of the tables that grow without bound (jobs, attempts, task logs, events, the
ledger, executions, usage). Django's admin counts every matching row on every page view (twice
when unfiltered), reads every distinct value of a plain field to offer it as a filter, and
searches with a substring match (`icontains`) over every search field and its joins, and sorts by
any column: on millions of rows, full scans on each click. Here the count stops at COUNT_CAP (the
page says "more than 10,000"), filters offer the values the code knows, a search asks only what an
index answers (LargeTableAdmin.search): an id finds its row exactly, a team's slug or a handler's
name their rows, and a list is sorted only in its own order (newest first) or by a column named in
`sortable_by`, whose order an index serves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.text import smart_split, unescape_string_literal

from pulse_site.ids import looks_like_public_id
from pulse_site.teams.models import Team

COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows: `SELECT COUNT(*) FROM (… LIMIT n)`, an index walk that
    stops, instead of a count of the whole table."""

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        return rows.order_by()[: COUNT_CAP + 1].count() if isinstance(rows, QuerySet) else len(rows)

    @property
    def capped(self) -> bool:
        return self.count > COUNT_CAP

    @property
    def count_text(self) -> str:
        return f"more than {COUNT_CAP:,}" if self.capped else str(self.count)


class IndexedOrderChangeList(ChangeList):
    """Sorts only by the columns of `sortable_by`: a sort asked in the address (?o=3) by another
    column is left out, the list keeping its own order, as it is when no column is asked."""

    def get_ordering_field(self, field_name: Any) -> Any:
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class LargeTableAdmin(admin.ModelAdmin):
    paginator = CappedPaginator
    show_full_result_count = False  # no second COUNT(*) of the whole table beside a filtered one
    # A click on a column's title sorted the whole table by it for one page of rows: 0.5-1.6 s at
    # 1,000,000 jobs (bench/HISTORY.md, session 22). Only an order an index serves, whatever the
    # filter, is offered: the list's own, newest first, and a primary key named here.
    sortable_by: ClassVar[tuple[str, ...] | list[str] | None] = ()
    # Django draws the search box only for an admin with search fields; the search itself is
    # search() below, never Django's substring match over them.
    search_fields = ("pk",)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # History (attempts, log lines, runs, events, the ledger) goes by retention, a job with its
        # own through job_delete: a raw delete left a job's page without its attempts, and Django's
        # "delete selected" over a whole list would run uncapped in one request.
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # A row's page is read, never saved: with every field read-only, its Save still wrote the
        # whole row back as the page had read it, over what a worker changed meanwhile (a finished
        # job queued again). Change permission stays on the list, where the actions need it.
        return obj is None and super().has_change_permission(request, obj)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return IndexedOrderChangeList

    def row_team(self, row: Any) -> Team | None:
        """The team in whose zone `row`'s page shows its times."""
        return getattr(row, "team", None)

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], add: bool = False,
                           change: bool = False, form_url: str = "", obj: Any = None) -> Any:
        # Its times in its team's zone, named: in the server's UTC, unnamed, a Tokyo team's job made
        # at half past midnight read as the day before. (The page has no input to read in a zone.)
        team = self.row_team(obj) if obj is not None else None
        if team is None:
            return super().render_change_form(request, context, add, change, form_url, obj)
        zone = team.time_zone or "UTC"
        context["subtitle"] = f"{context.get('subtitle') or obj} (times in {zone}, the team's zone)"
        response = super().render_change_form(request, context, add, change, form_url, obj)
        assert isinstance(response, TemplateResponse)
        with timezone.override(zone):
            return response.render()

    def search_word(self, word: str) -> Q | None:
        """The rows one word of a search finds, as a condition an index serves; None: the word is
        nothing this table can be searched by."""
        return None

    def search(self, words: list[str]) -> Q | str:
        """The rows every word finds (as Django's admin, each word narrows the others), or why
        the search finds nothing: a word that names nothing here."""
        found = Q()
        for word in words:
            condition = self.search_word(word)
            if condition is None:
                return f"Nothing here is found by “{word}”. {self.search_help_text}"
            found &= condition
        return found

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
                           ) -> tuple[QuerySet[Any], bool]:
        words = search_words(search_term)
        if not words:
            return queryset, False
        found = self.search(words)
        if isinstance(found, str):
            messages.warning(request, found)
            return queryset.none(), False
        return queryset.filter(found), False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        changelist = context.get("cl")
        if changelist is not None and getattr(changelist.paginator, "capped", False):
            context["selection_note_all"] = f"All {changelist.paginator.count_text} selected"
        return response


def choices_filter(field: str, title: str, choices: Any, *, team_by_team: bool = False, parameter: str = ""
                   ) -> type[admin.SimpleListFilter]:
    """A filter offering `choices` (pairs, or a callable giving them when the page is drawn)
    rather than Django's SELECT DISTINCT over the table. `team_by_team`: the field is indexed
    after the team (every_team()). `parameter`: its name in the address, when not the field's."""

    class Filter(admin.SimpleListFilter):
        parameter_name = parameter or field

        def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
            return list(choices() if callable(choices) else choices)

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            value = self.value()
            if not value:
                return queryset
            return queryset.filter(**{field: value}, **({"team__in": every_team()} if team_by_team else {}))

    Filter.title = title
    Filter.__name__ = f"{field.title().replace('_', '')}Filter"
    return Filter


# --- Search through indexes -----------------------------------------------------------------------


def search_words(term: str) -> list[str]:
    """The words of a search as Django's admin splits them: "quoted words" stay one."""
    words = []
    for bit in smart_split(term):
        if bit[:1] in ('"', "'") and len(bit) > 1 and bit[0] == bit[-1]:
            bit = unescape_string_literal(bit)
        if bit.strip():
            words.append(bit.strip())
    return words


def public_id_in(word: str, *prefixes: str) -> str | None:
    """`word` as the public id it is (pasted in lower case too) if it is one of `prefixes`'."""
    candidate = word.upper()
    return candidate if any(looks_like_public_id(candidate, prefix) for prefix in prefixes) else None


def row_number(word: str) -> int | None:
    """`word` as a primary key (the number in a row's admin URL, an event's id), if it is one."""
    return int(word) if word.isascii() and word.isdigit() and len(word) <= 18 else None


def every_team() -> QuerySet[Team, Any]:
    """Every team's id, as a subquery: `team_id IN (every_team()) AND handler = ?` is the same rows
    as `handler = ?`, but PostgreSQL seeks them team by team in an index that leads with the team
    (job_team_handler_id, job_team_origin_id, usage_unique_window: an index probe per team) where
    it would otherwise read the whole table for a handler with few rows or none."""
    return Team.objects.values("pk")


@dataclass(frozen=True)
class Named:
    """What a word that is no id names: teams (by their slug) or handlers (by their name)."""

    teams: list[int] = field(default_factory=list)
    handlers: list[str] = field(default_factory=list)


def named(word: str) -> Named:
    """The teams or handlers `word` names: a team's slug or a deployed handler's name exactly,
    else the teams whose slug, or the handlers whose name, starts with it (exact names first, then
    teams before handlers). Read from the teams table and the registry, both small: the big
    table is then asked for the ids found, by its index."""
    from jobs.handlers.registry import registered_handlers  # the registry imports no admin code

    slug = word.lower()
    handlers = [spec.name for spec in registered_handlers(internal=True)]
    teams = list(Team.objects.filter(slug=slug).values_list("pk", flat=True))
    if teams:
        return Named(teams=teams)
    if word in handlers:
        return Named(handlers=[word])
    teams = list(Team.objects.filter(slug__startswith=slug).values_list("pk", flat=True))
    if teams:
        return Named(teams=teams)
    return Named(handlers=[name for name in handlers if name.startswith(word)])
