"""Reads of the event outbox for live sockets."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import BigIntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce, Greatest

from pulse_site.live.models import Event, RelayCursor
from pulse_site.teams.models import ApiToken, Membership, Team
from pulse_site.teams.selectors import manages_in_person

# The events about the team's API tokens (made, revoked: a token's name, prefix and access) are for
# those who see the token list, as the team page and /api/v1/tokens/ are.
TOKEN_EVENTS = "token."


@dataclass(frozen=True)
class Audience:
    """Who reads a team's events, as far as what they may see depends on it: the one rule that
    every way to the events applies (the overview's list and its live rows, the activity page, the
    events API, and the socket's live events, replay and catch-up)."""

    sees_tokens: bool

    @classmethod
    def of(cls, *, membership: Membership | None, token: ApiToken | None = None) -> Audience:
        return cls(sees_tokens=manages_in_person(membership=membership, token=token))

    def sees(self, kind: str) -> bool:
        return self.sees_tokens or not kind.startswith(TOKEN_EVENTS)

    def visible(self, events: QuerySet[Event]) -> QuerySet[Event]:
        """`events` without those this audience may not see."""
        return events if self.sees_tokens else events.exclude(kind__startswith=TOKEN_EVENTS)


def event_last_id(*, team_id: int) -> int:
    """The team's newest event id, the pruned ones counted (0 when it never had one): the `since`
    a page is rendered at and its socket resumes from. Below the pruned mark, the socket was told
    resync (events_since) and the page reloaded, rendered the same since, and so on for as long as
    the team made no event (all of an idle team's events pruned). One query; the newest id is
    served by the (team, id) index."""
    newest = Event.objects.filter(team_id=OuterRef("pk")).order_by("-id").values("id")[:1]
    last = Greatest("events_pruned_to", Coalesce(Subquery(newest), 0), output_field=BigIntegerField())
    return Team.objects.filter(pk=team_id).values_list(last, flat=True).first() or 0


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
