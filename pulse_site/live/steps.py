"""Ticker steps of the live app (relay and retention), registered at import."""

from __future__ import annotations

from django.conf import settings

from pulse_site.live.relay import events_prune, relay_pending
from pulse_site.ticker import step


@step("relay_events", every=0.2, atomic=False)
def relay_events() -> int:
    # With the in-memory channel layer only the web process reaches the browsers, so the web
    # process relays (pulse_site.asgi) and a ticker doing it too would send into the void.
    if settings.PULSE_RELAY_IN_WEB:
        return 0
    return relay_pending()


@step("prune_events", every=60.0, atomic=False)
def prune_events() -> int:
    return events_prune(older_than_days=settings.PULSE_EVENT_RETENTION_DAYS)
