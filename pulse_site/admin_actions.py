"""Admin actions that call the same services as the dashboard and the API, one row at a time, and
never on more rows than one request gets through (ACTION_MAX)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from pulse_site.admin_lists import COUNT_CAP
from pulse_site.errors import PulseError
from pulse_site.teams.selectors import signed_in_user

Action = Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Any]], None]

# The most rows one action runs its service on in one request. Each row is a transaction of its
# own (row locks, events, budget releases): 200 take a few seconds, as one request of the
# dashboard's bulk actions does (jobs.bulk.BULK_MAX). "Select all" on a list of 100,000 was a
# request that never ended, cut off by the proxy's timeout halfway without a word of what was done.
ACTION_MAX = 200
# Refusals listed one by one after an action; the rest are counted.
REFUSALS_LISTED = 20


def operator_name(request: HttpRequest) -> str:
    """The staff user acting in the admin, as the team's events name them."""
    return f"admin {request.user.get_username()}"


def action_logged(modeladmin: admin.ModelAdmin, request: HttpRequest, row: Any, label: str) -> None:
    """Django's admin log of an action done to `row` (the history page, "Recent actions"): Django
    writes one for a form's save and a delete, never for a custom action. A "Delete…" action is
    logged as a deletion (the row is gone: its log entry is what is left of it)."""
    message = f"{label} (admin action)."
    if label.startswith("Delete"):
        LogEntry.objects.log_actions(user_id=signed_in_user(request).pk, queryset=[row], action_flag=DELETION,
                                     change_message=message, single_object=True)
    else:
        modeladmin.log_change(request, row, message)


def act_on_selected(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any],
                    act: Callable[[Any], object], *, label: str, noun: str,
                    only: tuple[Q, str] | None = None) -> None:
    """`act(row)` on each selected row in primary key order, each done one in Django's admin log; a
    PulseError refuses that row alone, said as a warning naming it. `noun` is the rows' plural.

    `only`: the rows the action can act on at all and why the others cannot (an override that has
    ended): the others are left and counted in one line, not refused one by one, so that a "select
    all" of a long history acts on the few it can.

    More than ACTION_MAX selected (the "select all" of a long list) is refused before any row is
    touched, saying how many and what to do instead: narrow the list, or the admin's own
    `bulk_instead` (a command that acts on any number in batches)."""
    if only is not None:
        can, why = only
        left = queryset.exclude(can).order_by()[:COUNT_CAP + 1].count()
        queryset = queryset.filter(can)
        if left:
            modeladmin.message_user(request, f"Left as they were: {left:,} of the selected {noun} ({why}).",
                                    messages.WARNING)
    # The rows acted on are read once, one more than the cap: counted first and read again after, the
    # rows of a "select all" that came in between (jobs submitted meanwhile) were all acted on.
    rows = list(queryset.order_by("pk")[:ACTION_MAX + 1])
    if len(rows) > ACTION_MAX:
        selected = queryset.order_by()[:COUNT_CAP + 1].count()  # an index walk that stops, as the list's count
        many = f"more than {COUNT_CAP:,}" if selected > COUNT_CAP else f"{selected:,}"
        modeladmin.message_user(
            request, f"{label} was not run: {many} {noun} are selected, and an action runs on at most "
                     f"{ACTION_MAX} at a time, each through its service in this one request. Narrow the list with "
                     f"its filters or search to {ACTION_MAX} or fewer and select them all again"
                     f"{getattr(modeladmin, 'bulk_instead', '')}.", messages.ERROR)
        return
    done, refused = 0, []
    for row in rows:
        # A service that deletes the row itself (row.delete()) leaves it without a pk: the log
        # entry is of the row as it was.
        was = copy.copy(row)
        try:
            act(row)
        except PulseError as exc:
            refused.append(f"{was}: {exc.message}")
            continue
        done += 1
        action_logged(modeladmin, request, row if row.pk is not None else was, label)
    modeladmin.message_user(request, f"{label}: {done} {noun if done != 1 else noun.removesuffix('s')}.",
                            messages.SUCCESS)
    for line in refused[:REFUSALS_LISTED]:
        modeladmin.message_user(request, line, messages.WARNING)
    if len(refused) > REFUSALS_LISTED:
        modeladmin.message_user(request, f"… and {len(refused) - REFUSALS_LISTED} more refused.", messages.WARNING)


def service_action(service: Callable[..., Any], label: str, *, arg: str, noun: str) -> Action:
    """`service(<arg>=row, by="admin <user>")` for each selected row (act_on_selected)."""

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        act_on_selected(modeladmin, request, queryset, lambda row: service(**{arg: row}, by=operator_name(request)),
                        label=label, noun=noun)

    action.short_description = f"{label} selected {noun}"  # type: ignore[attr-defined]
    # Without it Django offers an action to anyone who may view the list: a staff member given
    # "view job" cancelled jobs.
    action.allowed_permissions = ("change",)  # type: ignore[attr-defined]
    action.__name__ = f"action_{label.lower().replace(' ', '_')}"
    return action
