"""The web process: pages, API and static files over HTTP, live events over WebSockets.

In the embedded default (PULSE_RELAY_IN_WEB) the event relay runs here too, started and stopped
with the ASGI lifespan: with the in-memory channel layer only this process reaches the browsers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulse_site.settings")
django_asgi = get_asgi_application()  # sets Django up before anything imports models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.db import database_sync_to_async  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from pulse_site.live.relay import RELAY_BATCH, relay_batch  # noqa: E402
from pulse_site.live.routing import websocket_urlpatterns  # noqa: E402

log = logging.getLogger("pulse.live.relay")

RELAY_INTERVAL = 0.2
RELAY_STOP_TIMEOUT = 10.0

Scope = dict[str, Any]


async def relay_forever(stop: asyncio.Event, *, interval: float = RELAY_INTERVAL) -> None:
    """Relay until `stop` is set; a failing batch is logged and retried on the next round.

    Stopping waits for the batch in hand instead of cancelling it: the batch sends to the channel
    layer on this event loop while its thread holds the cursor's transaction, so a cancelled
    batch would leave that thread (and its open transaction) waiting forever.
    """
    while not stop.is_set():
        try:
            sent = await database_sync_to_async(relay_batch)()
        except Exception:
            log.exception("event relay failed")
            sent = 0
        if sent < RELAY_BATCH:  # caught up: wait; else go straight on with the backlog
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


class PulseASGI:
    """Routes every scope to Channels, and owns the lifespan (the in-process relay)."""

    def __init__(self, app: Any, *, relay_in_web: bool) -> None:
        self.app = app
        self.relay_in_web = relay_in_web

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        else:
            await self.app(scope, receive, send)

    async def lifespan(self, receive: Any, send: Any) -> None:
        task: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.relay_in_web:
                    task = asyncio.create_task(relay_forever(stop), name="pulse-event-relay")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if task is not None:
                    stop.set()
                    try:
                        await asyncio.wait_for(task, timeout=RELAY_STOP_TIMEOUT)
                    except (asyncio.TimeoutError, asyncio.CancelledError):
                        log.warning("event relay did not stop within %s s", RELAY_STOP_TIMEOUT)
                await send({"type": "lifespan.shutdown.complete"})
                return


channels_app = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi),
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
application = PulseASGI(channels_app, relay_in_web=settings.PULSE_RELAY_IN_WEB)
