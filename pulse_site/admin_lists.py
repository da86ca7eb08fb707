"""Changelists of the tables that grow without bound (jobs, attempts, task logs, events, the
ledger, executions, usage). Django's admin counts every matching row on every page view (twice
when unfiltered) and reads every distinct value of a plain field to offer it as a filter: on
millions of rows, full scans on each click. Here the count stops at COUNT_CAP (the page says
"more than 10,000"), and filters offer the values the code knows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

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


class LargeTableAdmin(admin.ModelAdmin):
    paginator = CappedPaginator
    show_full_result_count = False  # no second COUNT(*) of the whole table beside a filtered one

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        changelist = context.get("cl")
        if changelist is not None and getattr(changelist.paginator, "capped", False):
            context["selection_note_all"] = f"All {changelist.paginator.count_text} selected"
        return response


def choices_filter(field: str, title: str, choices: Any) -> type[admin.SimpleListFilter]:
    """A filter offering `choices` (pairs, or a callable giving them when the page is drawn)
    rather than Django's SELECT DISTINCT over the table."""

    class Filter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
            return list(choices() if callable(choices) else choices)

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            value = self.value()
            return queryset.filter(**{field: value}) if value else queryset

    Filter.title = title
    Filter.__name__ = f"{field.title().replace('_', '')}Filter"
    return Filter
