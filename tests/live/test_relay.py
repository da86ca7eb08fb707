from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from pulse_site.live.models import Event, RelayCursor
from pulse_site.live.relay import CURSOR_NAME, events_prune, relay_batch
from pulse_site.live.services import event_emit, team_group
from pulse_site.live.steps import prune_events, relay_events

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async
relay = database_sync_to_async(relay_batch)


@pytest.fixture(autouse=True)
def _grace(settings):
    settings.PULSE_RELAY_GAP_GRACE = 3.0


async def listen(team) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(team_group(team.pk), channel)
    return channel


async def received(channel: str, count: int) -> list[int]:
    layer = get_channel_layer()
    ids = []
    for _ in range(count):
        message = await layer.receive(channel)
        assert message["type"] == "event.message"
        ids.append(message["event"]["id"])
    return ids


def emit_many(team, count: int) -> list[int]:
    return [event_emit(team=team, kind="job.updated", subject=f"JB_{n}").id for n in range(count)]


def cursor_at() -> int:
    return RelayCursor.objects.get(name=CURSOR_NAME).last_id


async def assert_next_is_a_fresh_marker(team, channel: str) -> None:
    """Nothing else is queued for the channel: a new event comes out next (no timing involved)."""
    [marker] = await db(emit_many)(team, 1)
    assert await relay() == 1
    assert await received(channel, 1) == [marker]


async def test_the_relay_forwards_new_events_to_their_teams_group_in_order(acme, relay_cursor):
    channel = await listen(acme)
    ids = await db(emit_many)(acme, 3)
    assert await relay() == 3
    assert await received(channel, 3) == ids
    assert await db(cursor_at)() == ids[-1]


async def test_a_relay_run_twice_delivers_each_event_once(acme, relay_cursor):
    channel = await listen(acme)
    ids = await db(emit_many)(acme, 4)
    assert (await relay(), await relay()) == (4, 0)
    assert await received(channel, 4) == ids
    await assert_next_is_a_fresh_marker(acme, channel)


def relay_in_own_thread() -> int:
    try:
        return relay_batch()
    finally:
        connection.close()


async def test_two_relays_at_once_deliver_each_event_once(acme, relay_cursor):
    channel = await listen(acme)
    ids = await db(emit_many)(acme, 6)
    first = sync_to_async(relay_in_own_thread, thread_sensitive=False)
    second = sync_to_async(relay_in_own_thread, thread_sensitive=False)
    counts = await asyncio.gather(first(), second())
    assert sorted(counts) == [0, 6]
    assert await received(channel, 6) == ids
    await assert_next_is_a_fresh_marker(acme, channel)


@pytest.mark.postgres
def test_a_relay_that_finds_the_cursor_locked_returns_at_once(acme, relay_cursor, settings):
    if not settings.IS_POSTGRES:
        pytest.skip("SQLite has no row locks; its relays queue on the database lock instead")
    emit_many(acme, 2)
    locked, release = threading.Event(), threading.Event()

    def hold_the_cursor() -> None:
        try:
            with transaction.atomic():
                RelayCursor.objects.select_for_update().get(name=CURSOR_NAME)
                locked.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_cursor)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        before = cursor_at()
        assert relay_batch() == 0
        assert cursor_at() == before
    finally:
        release.set()
        holder.join()
    assert relay_batch() == 2


# --- Gaps: a lower id may commit after a higher one ------------------------------------------


def open_a_gap(team) -> tuple[list[int], dict]:
    """Three events, the middle one taken away as if its transaction had not committed yet."""
    ids = emit_many(team, 3)
    middle = Event.objects.get(pk=ids[1])
    row = {"id": middle.id, "team_id": middle.team_id, "kind": middle.kind, "subject": middle.subject}
    middle.delete()
    return ids, row


async def test_a_young_gap_holds_the_cursor_until_the_late_row_commits(acme, relay_cursor, time_machine):
    time_machine.move_to(timezone.now(), tick=False)  # young for good: 3 s of a starved core would age it
    channel = await listen(acme)
    ids, late_row = await db(open_a_gap)(acme)
    assert await relay() == 1
    assert await db(cursor_at)() == ids[0]
    assert await relay() == 0  # still waiting at the gap

    await db(Event.objects.create)(**late_row)
    assert await relay() == 2
    assert await received(channel, 3) == ids


async def test_a_gap_older_than_the_grace_is_skipped(acme, relay_cursor):
    channel = await listen(acme)
    ids, _ = await db(open_a_gap)(acme)
    old = timezone.now() - timedelta(seconds=4)
    await db(Event.objects.filter(pk=ids[2]).update)(created_at=old)
    assert await relay() == 2
    assert await received(channel, 2) == [ids[0], ids[2]]
    assert await db(cursor_at)() == ids[2]


async def test_an_event_committing_after_the_grace_is_still_forwarded_once(acme, relay_cursor):
    """A transaction held up longer than the grace (a lock wait, a starved core): the relay went
    on without its event, and passes it on when it commits, out of order, once."""
    channel = await listen(acme)
    ids, late_row = await db(open_a_gap)(acme)
    await db(Event.objects.filter(pk=ids[2]).update)(created_at=timezone.now() - timedelta(seconds=4))
    assert await relay() == 2
    assert await received(channel, 2) == [ids[0], ids[2]]

    await db(Event.objects.create)(**late_row)  # the late commit
    assert await relay() == 1
    assert await received(channel, 1) == [late_row["id"]]
    assert await db(cursor_at)() == ids[2]  # the cursor stays where it was
    assert await relay() == 0
    await assert_next_is_a_fresh_marker(acme, channel)


async def test_a_passed_over_id_is_forgotten_after_the_late_window(acme, relay_cursor, settings):
    settings.PULSE_RELAY_LATE_SECONDS = 60
    channel = await listen(acme)
    ids, late_row = await db(open_a_gap)(acme)
    await db(Event.objects.filter(pk=ids[2]).update)(created_at=timezone.now() - timedelta(seconds=4))
    assert await relay() == 2
    assert await received(channel, 2) == [ids[0], ids[2]]
    late = await db(lambda: RelayCursor.objects.get(name=CURSOR_NAME).late)()
    assert [i for i, _ in late] == [late_row["id"]]

    settings.PULSE_RELAY_LATE_SECONDS = 0  # the window has passed: a rollback, not a slow commit
    await db(Event.objects.create)(**late_row)
    assert await relay() == 0
    assert await db(lambda: RelayCursor.objects.get(name=CURSOR_NAME).late)() == []
    await assert_next_is_a_fresh_marker(acme, channel)


async def test_a_young_gap_right_after_the_cursor_holds_everything(acme, relay_cursor, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    ids, _ = await db(open_a_gap)(acme)
    await db(Event.objects.filter(pk=ids[0]).delete)()
    before = await db(cursor_at)()
    assert await relay() == 0
    assert await db(cursor_at)() == before


# --- Ticker steps ----------------------------------------------------------------------------


def test_the_relay_step_stays_out_of_the_way_when_the_web_process_relays(acme, relay_cursor, settings):
    settings.PULSE_RELAY_IN_WEB = True
    before = cursor_at()
    ids = emit_many(acme, 2)
    assert relay_events() == 0
    assert cursor_at() == before
    settings.PULSE_RELAY_IN_WEB = False
    assert relay_events() == 2
    assert cursor_at() == ids[-1]


def age(ids: list[int], days: int) -> None:
    Event.objects.filter(pk__in=ids).update(created_at=timezone.now() - timedelta(days=days))


def test_pruning_deletes_only_events_past_retention_in_batches(acme):
    old = emit_many(acme, 5)
    age(old, 8)
    young = emit_many(acme, 2)
    age(young, 6)
    kept = set(Event.objects.exclude(pk__in=old).values_list("pk", flat=True))
    assert events_prune(older_than_days=7, batch=2) == 5
    assert set(Event.objects.values_list("pk", flat=True)) == kept


def test_the_prune_step_uses_the_retention_setting(acme, settings):
    settings.PULSE_EVENT_RETENTION_DAYS = 3
    stale = emit_many(acme, 2)
    age(stale, 4)
    assert prune_events() == 2
    assert not Event.objects.filter(pk__in=stale).exists()
