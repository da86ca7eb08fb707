"""An open socket whose channel layer dropped events (a Redis restart drops the subscription for a
moment while the socket stays open) gets them from the outbox: it compares what it was sent with
what the relay has forwarded, every CATCH_UP_SECONDS. Runs on both databases, in process; the
real-process version is test_redis_restart.py."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from pulse_site.live import consumers
from pulse_site.live.models import RelayCursor
from pulse_site.live.relay import CURSOR_NAME, relay_batch
from pulse_site.live.services import event_emit
from pulse_site.teams.services import token_create
from tests.live.conftest import _empty_layer_and_no_lingering_connections, bearer_headers, open_socket  # noqa: F401
from tests.live.conftest import relay_cursor  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)
db = database_sync_to_async


@pytest.fixture(autouse=True)
def _quick_catch_up(monkeypatch):
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 0.2)


async def connected(team):
    _, secret = await db(token_create)(team=team, name="live", access="read", expires_at=None, by=None)
    await db(relay_batch)()  # the token's own event, before the socket opens
    socket = await open_socket(bearer_headers(secret))
    assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
    return socket


async def test_an_event_the_layer_dropped_reaches_the_open_socket_from_the_outbox(acme, relay_cursor):
    socket = await connected(acme)
    lost = await db(event_emit)(team=acme, kind="job.completed", subject="JB_lost")
    # The relay forwarded it, but the layer delivered it to nobody (the subscription was down).
    await db(lambda: RelayCursor.objects.filter(name=CURSOR_NAME).update(last_id=lost.id))()
    frame = await socket.receive_json_from(timeout=5)
    assert (frame["type"], frame["id"], frame["kind"], frame["subject"]) == ("event", lost.id, "job.completed", "JB_lost")
    assert await socket.receive_nothing(timeout=0.6)
    await socket.disconnect()


async def test_an_event_the_layer_delivered_is_not_sent_again_by_the_catch_up(acme, globex, relay_cursor):
    socket = await connected(acme)
    delivered = await db(event_emit)(team=acme, kind="job.completed", subject="JB_one")
    await db(event_emit)(team=globex, kind="job.completed", subject="JB_theirs")
    await db(relay_batch)()
    frame = await socket.receive_json_from(timeout=5)
    assert (frame["type"], frame["id"]) == ("event", delivered.id)
    # Several catch-up rounds later: nothing more (no duplicate, nothing of Globex's).
    assert await socket.receive_nothing(timeout=0.8)
    await socket.disconnect()
