"""A ticker relays live events from a thread of its own, looking every 50 ms, so events do not wait
for the ticker's next round of steps."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from pulse_site.live.relay import relay_loop
from pulse_site.live.services import event_emit, team_group

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # The thread sends from an event loop of its own, which the Redis layer serves; the in-memory
    # layer's queues belong to one loop (the embedded default relays inside the web process).
    pytest.mark.skipif(not settings.REDIS_URL, reason="the ticker's relay thread serves the Redis channel layer"),
]


async def test_the_relay_thread_forwards_new_events_in_order_and_stops_when_asked(acme, globex, relay_cursor):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(team_group(acme.pk), channel)
    stop = threading.Event()
    thread = threading.Thread(target=relay_loop, args=(stop,), daemon=True)
    thread.start()
    try:
        emitted = await database_sync_to_async(
            lambda: [event_emit(team=team, kind="job.progress", subject=f"JB_{n}").id
                     for n, team in enumerate([acme, globex, acme])])()
        first = await asyncio.wait_for(layer.receive(channel), timeout=10)
        second = await asyncio.wait_for(layer.receive(channel), timeout=10)
        assert [first["event"]["id"], second["event"]["id"]] == [emitted[0], emitted[2]]
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive()
