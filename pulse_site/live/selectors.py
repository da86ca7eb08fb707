"""Reads of the event outbox for live sockets."""

from __future__ import annotations

from django.db.models import Max

from pulse_site.live.models import Event


def event_last_id(*, team_id: int) -> int:
    """The team's newest event id (0 when it has none); served by the (team, id) index."""
    return Event.objects.filter(team_id=team_id).aggregate(last=Max("id"))["last"] or 0


def events_since(*, team_id: int, since: int, limit: int) -> list[Event]:
    """The team's events after `since`, oldest first, at most `limit`."""
    return list(Event.objects.filter(team_id=team_id, id__gt=since).order_by("id")[:limit])
