"""Reads of the event outbox for live sockets."""

from __future__ import annotations

from django.db.models import Max

from pulse_site.live.models import Event, RelayCursor
from pulse_site.teams.models import Team


def event_last_id(*, team_id: int) -> int:
    """The team's newest event id (0 when it has none); served by the (team, id) index."""
    return Event.objects.filter(team_id=team_id).aggregate(last=Max("id"))["last"] or 0


def events_since(*, team_id: int, since: int, limit: int) -> tuple[list[Event], bool]:
    """The team's events after `since`, oldest first, at most `limit`; and whether some after
    `since` are gone (pruned by the retention), read after them."""
    events = list(Event.objects.filter(team_id=team_id, id__gt=since).order_by("id")[:limit])
    pruned_to = Team.objects.filter(pk=team_id).values_list("events_pruned_to", flat=True).first() or 0
    return events, pruned_to > since


def events_relayed_after(*, team_id: int, after: int, limit: int) -> tuple[int, list[int]]:
    """How far the relay has got (its cursor), and the ids of the team's events after `after` up to
    there: what a socket of the team should have received by now. Served by the (team, id) index."""
    from pulse_site.live.relay import CURSOR_NAME

    cursor = RelayCursor.objects.filter(name=CURSOR_NAME).values_list("last_id", flat=True).first() or 0
    if cursor <= after:
        return cursor, []
    ids = Event.objects.filter(team_id=team_id, id__gt=after, id__lte=cursor).order_by("id")
    return cursor, list(ids.values_list("id", flat=True)[:limit])


def events_by_id(*, team_id: int, ids: list[int]) -> list[Event]:
    return list(Event.objects.filter(team_id=team_id, id__in=ids).order_by("id"))
