"""Admin actions that call the same services as the dashboard and the API, one row at a time."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.db.models import QuerySet
from django.http import HttpRequest

from pulse_site.errors import PulseError
from pulse_site.teams.selectors import signed_in_user

Action = Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Any]], None]


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


def service_action(service: Callable[..., Any], label: str, *, arg: str, noun: str) -> Action:
    """`service(<arg>=row, by="admin <user>")` for each selected row; refusals become warnings."""

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        done, refused = 0, []
        for row in queryset.order_by("pk"):
            # A service that deletes the row itself (row.delete()) leaves it without a pk: the log
            # entry is of the row as it was.
            was = copy.copy(row)
            try:
                service(**{arg: row}, by=operator_name(request))
                done += 1
                action_logged(modeladmin, request, row if row.pk is not None else was, label)
            except PulseError as exc:
                refused.append(f"{getattr(row, 'public_id', row.pk)}: {exc.message}")
        modeladmin.message_user(request, f"{label}: {done} {noun}.", messages.SUCCESS)
        for line in refused[:20]:
            modeladmin.message_user(request, line, messages.WARNING)

    action.short_description = f"{label} selected {noun}"  # type: ignore[attr-defined]
    # Without it Django offers an action to anyone who may view the list: a staff member given
    # "view job" cancelled jobs.
    action.allowed_permissions = ("change",)  # type: ignore[attr-defined]
    action.__name__ = f"action_{label.lower().replace(' ', '_')}"
    return action
