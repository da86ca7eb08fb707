"""Moving the outbox along: forwarding new Event rows to the channel layer, pruning old ones.

Several relays may run (one per ticker, or one per web process in the embedded default); the
RelayCursor row lock makes exactly one of them work at a time, and consumers drop an id they
have already sent, so a client never sees an event twice. Other readers of the outbox
(notifications) read it through the same `outbox_consume` with a cursor of their own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from pulse_site.live.models import Event, RelayCursor
from pulse_site.live.services import team_group
from pulse_site.teams.models import Team

log = logging.getLogger("pulse.live.relay")

CURSOR_NAME = "events"
RELAY_BATCH = 500
PRUNE_BATCH = 5_000


def _ensure_cursor(name: str) -> int:
    # A new cursor starts at the newest event: nobody was listening to the history before it,
    # and clients that want it replay from the table (`?since=`).
    newest = Event.objects.aggregate(newest=Max("id"))["newest"] or 0
    cursor, _ = RelayCursor.objects.get_or_create(name=name, defaults={"last_id": newest})
    return cursor.last_id


def _deliverable(events: list[Event], *, after: int, grace: timedelta) -> tuple[list[Event], list[int]]:
    """The events up to the first gap that may still fill, and the ids of the gaps passed over.

    Ids come from a sequence, but transactions commit in any order: a missing id may belong to a
    transaction that is still open and commits later. A gap is only passed over once the row
    after it is older than the grace period; its ids are returned, so a late commit is still
    passed on (`_late_arrivals`).
    """
    now = timezone.now()
    expected = after + 1
    ready: list[Event] = []
    skipped: list[int] = []
    for event in events:
        if event.id != expected:
            if now - event.created_at < grace:
                break
            skipped.extend(range(expected, min(event.id, expected + LATE_IDS_KEPT)))
        ready.append(event)
        expected = event.id + 1
    return ready, skipped


# The most skipped ids a cursor remembers (a rolled-back bulk insert can leave a long gap; the
# newest are kept).
LATE_IDS_KEPT = 1_000


def _late_arrivals(row: RelayCursor, skipped: list[int], *, kinds: Collection[str] | None) -> list[Event]:
    """Update the cursor's list of passed-over ids (add `skipped`, forget those past
    PULSE_RELAY_LATE_SECONDS, and those that arrived) and return the ones that arrived: a
    transaction that committed after the grace. Their ids are below the cursor; each is
    returned once, since it leaves the list in the transaction that hands it on."""
    now = time.time()
    keep_after = now - settings.PULSE_RELAY_LATE_SECONDS
    waiting = {int(i): at for i, at in row.late if at > keep_after}
    arrived: list[Event] = []
    if waiting:
        arrived = list(Event.objects.filter(id__in=list(waiting)).order_by("id"))
        for event in arrived:
            del waiting[event.id]
        if arrived:
            log.warning("events %s committed after the relay's gap grace; passed on now, out of order",
                        ", ".join(str(event.id) for event in arrived))
        if kinds is not None:
            arrived = [event for event in arrived if event.kind in kinds]
    waiting.update((i, now) for i in skipped)
    row.late = [[i, waiting[i]] for i in sorted(waiting)[-LATE_IDS_KEPT:]]
    return arrived


def outbox_consume(*, cursor: str, handle: Callable[[list[Event]], object],
                   kinds: Collection[str] | None = None, limit: int = RELAY_BATCH) -> int:
    """Pass the events after the named cursor to `handle`, in id order, and move the cursor past
    them; the number of events passed over (0 when another reader holds it). Events the cursor
    passed at a gap and whose transaction committed since come first (their ids are lower).

    The one reader of the outbox, for the relay and for every other consumer (notifications):
    each named cursor gets the same gap grace and the same single-runner lock. `kinds` narrows
    what `handle` is given (the cursor still moves over the rest, whose payloads are not loaded).
    `handle` runs while the cursor row is locked: if it raises, the cursor stays put and the
    next run passes the same events again; it never skips one. Returns 0 at once when another
    reader holds the cursor (PostgreSQL's SKIP LOCKED; SQLite's immediate transactions queue).
    """
    # A lock-free look first: on SQLite every transaction takes the database's write lock, and
    # a reader polling five times a second must not take it when there is nothing to read.
    found = RelayCursor.objects.filter(name=cursor).values_list("last_id", "late").first()
    seen, late = found if found is not None else (_ensure_cursor(cursor), [])
    news = Q(id__gt=seen)
    if late:
        # Ids passed over at a gap: one of them committing late is news too (the list is
        # trimmed by the next locked run, so an id rolled back is looked for a while only).
        news |= Q(id__in=[i for i, _ in late])
    if not Event.objects.filter(news).exists():
        return 0
    grace = timedelta(seconds=settings.PULSE_RELAY_GAP_GRACE)
    with transaction.atomic():
        row = RelayCursor.objects.select_for_update(skip_locked=True).filter(name=cursor).first()
        if row is None:
            return 0
        pending = Event.objects.filter(id__gt=row.last_id).order_by("id")
        if kinds is not None:
            pending = pending.only("id", "kind", "created_at")
        ready, skipped = _deliverable(list(pending[:limit]), after=row.last_id, grace=grace)
        late_before = row.late
        arrived = _late_arrivals(row, skipped, kinds=kinds)
        if not ready and not arrived and row.late == late_before:
            return 0
        wanted = ready if kinds is None else [event for event in ready if event.kind in kinds]
        if kinds is not None and wanted:
            wanted = list(Event.objects.filter(id__in=[event.id for event in wanted]).order_by("id"))
        if arrived or wanted:
            handle(arrived + wanted)
        if ready:
            row.last_id = ready[-1].id
        row.updated_at = timezone.now()
        row.save(update_fields=["last_id", "late", "updated_at"])
    return len(ready) + len(arrived)


async def _send_all(layer: Any, events: list[Event]) -> None:
    for event in events:
        await layer.group_send(team_group(event.team_id), {"type": "event.message", "event": event.as_message()})


def relay_batch(*, limit: int = RELAY_BATCH, loop: asyncio.AbstractEventLoop | None = None) -> int:
    """Forward up to `limit` new events to their team's group; the number forwarded.

    `loop`: an event loop this thread keeps for sending. Without one, each batch runs in a new
    loop (async_to_sync), and the Redis layer connects anew for every loop: ~40 ms a batch.
    """
    layer = get_channel_layer()
    if layer is None:
        return 0

    def send(events: list[Event]) -> None:
        if loop is None:
            async_to_sync(_send_all)(layer, events)
        else:
            loop.run_until_complete(_send_all(layer, events))

    # Sent while the cursor is locked: if sending fails the cursor stays put and the next run
    # sends again (consumers drop the duplicates).
    return outbox_consume(cursor=CURSOR_NAME, limit=limit, handle=send)


def relay_pending(*, max_batches: int = 20, loop: asyncio.AbstractEventLoop | None = None) -> int:
    """Relay full batches until caught up (bounded, so one ticker step stays short)."""
    total = 0
    for _ in range(max_batches):
        sent = relay_batch(loop=loop)
        total += sent
        if sent < RELAY_BATCH:
            break
    return total


# How often a ticker's relay thread looks for new events: the longest a progress call waits
# before it is forwarded (a look is one indexed read of the cursor and one of the outbox).
RELAY_POLL_SECONDS = 0.05


def relay_loop(stop: threading.Event, *, every: float = RELAY_POLL_SECONDS) -> None:
    """Relay until `stop` is set, looking every `every` seconds (a ticker runs this in a thread of
    its own, so a long round of the other steps, such as 10,000 schedules falling due, never
    holds live events back). A failed batch is logged (an outage quietly) and tried again."""
    from django.db import DatabaseError, connections

    from pulse_site.outage import discard_broken_connections, is_database_outage

    loop = asyncio.new_event_loop()  # kept: the layer's Redis connection lives with it
    try:
        while not stop.is_set():
            try:
                sent = relay_pending(loop=loop)
            except Exception as exc:
                if not (isinstance(exc, DatabaseError) and is_database_outage(exc)):
                    log.exception("event relay failed")
                discard_broken_connections()
                sent = 0
            if not sent:
                stop.wait(every)
    finally:
        loop.close()
        connections.close_all()  # this thread's own connections


def events_prune(*, older_than_days: int, batch: int = PRUNE_BATCH) -> int:
    """Delete events past each team's retention (Team.event_retention_days, `older_than_days` for
    a team with none), in batches by id; the number deleted.

    Small batches keep each delete's locks short, so writers of new events never wait long.
    """
    now = timezone.now()
    own = dict(Team.objects.exclude(event_retention_days=None).values_list("pk", "event_retention_days"))
    # Teams on the default: served by the created_at index.
    deleted = _prune_events(Event.objects.filter(created_at__lt=now - timedelta(days=older_than_days))
                            .exclude(team_id__in=list(own)), batch=batch)
    for team_id, days in sorted(own.items()):
        assert days is not None  # (excluded above)
        # Served by the (team, id) index: a team's oldest events come first in id order.
        deleted += _prune_events(Event.objects.filter(team_id=team_id, created_at__lt=now - timedelta(days=days)),
                                 batch=batch)
    return deleted


def _prune_events(events: Any, *, batch: int) -> int:
    deleted = 0
    while True:
        ids = list(events.order_by("id").values_list("id", flat=True)[:batch])
        if not ids:
            return deleted
        with transaction.atomic():
            # Moved with the delete, so a replay that found the rows gone sees the mark too.
            newest = Event.objects.filter(id__in=ids).values("team_id").annotate(newest=Max("id"))
            for row in newest.order_by("team_id"):
                Team.objects.filter(pk=row["team_id"], events_pruned_to__lt=row["newest"]) \
                    .update(events_pruned_to=row["newest"])
            count, _ = Event.objects.filter(id__in=ids).delete()
        deleted += count
        if len(ids) < batch:
            return deleted
