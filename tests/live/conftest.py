"""Live-event helpers: sockets as alice/bob/charlie would open them, and a relay cursor at "now"."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from pulse_site.asgi import channels_app
from pulse_site.live.relay import relay_batch
from pulse_site.teams.middleware import SESSION_TEAM_KEY

ORIGIN = "http://testserver"


@pytest.fixture(autouse=True)
async def _empty_layer_and_no_lingering_connections():
    # The in-memory layer is one object for the whole run; leftovers must not reach the next test.
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        await layer.flush()
    yield
    # Consumers query from asgiref's shared sync thread, which keeps its connection
    # (CONN_MAX_AGE); left open, PostgreSQL refuses to drop the test database at the end.
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def quick_catch_up(monkeypatch):
    """The sockets' catch-up rounds every 0.2 s instead of 5 s: what a round does shows at once."""
    from pulse_site.live import consumers

    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 0.2)


@pytest.fixture
def no_catch_up(monkeypatch):
    """No catch-up round comes within a test: what closes a socket is told to it at once."""
    from pulse_site.live import consumers

    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 3600)


@pytest.fixture
def relay_cursor(acme, globex):
    """The relay's cursor, placed after the cast's own events (created before any socket)."""
    relay_batch()


def session_headers(user, *, team=None, origin: str | None = ORIGIN) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    if team is not None:
        session = client.session
        session[SESSION_TEAM_KEY] = team.public_id
        session.save()
    headers = [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return headers


def bearer_headers(secret: str, *, origin: str | None = None) -> list[tuple[bytes, bytes]]:
    headers = [(b"authorization", f"Bearer {secret}".encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return headers


async def open_socket(headers, path: str = "/ws/", app=channels_app) -> WebsocketCommunicator:
    if not any(name == b"host" for name, _ in headers):
        headers = [*headers, (b"host", b"testserver")]  # as a browser sends it
    socket = WebsocketCommunicator(app, path, headers=headers)
    connected, _ = await socket.connect()
    assert connected
    return socket


async def close_code(socket: WebsocketCommunicator) -> int:
    message = await socket.receive_output(timeout=5)
    assert message["type"] == "websocket.close"
    return message["code"]


def cookie_headers(client) -> list[tuple[bytes, bytes]]:
    """A signed-in test client's session cookie, from the site's own origin."""
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()), (b"origin", ORIGIN.encode())]


async def closed_with(socket: WebsocketCommunicator, reason: str) -> None:
    """Closed saying why (the `closed` frame), with 4403."""
    assert await socket.receive_json_from(timeout=5) == {"type": "closed", "reason": reason}
    assert await close_code(socket) == 4403


async def still_open(socket: WebsocketCommunicator) -> None:
    """Still answering (a ping), then closed by the test."""
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=5) == {"type": "pong"}
    await socket.disconnect()
