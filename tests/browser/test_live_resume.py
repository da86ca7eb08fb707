"""A page's live socket that drops resumes from the last id the server said it had sent everything
up to (`synced`), not from the last id seen: an event the channel layer dropped, with later ones
delivered, still reaches the page after the reconnect instead of being skipped for good."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from jobs.services import job_submit
from pulse_site.live import consumers
from pulse_site.live.models import RelayCursor
from pulse_site.live.relay import CURSOR_NAME
from pulse_site.live.services import event_emit

pytestmark = pytest.mark.browser


def _log_line(acme, job, line_id: int, message: str):
    return event_emit(team=acme, kind="job.log", subject=job.public_id, payload={
        "id": line_id, "stage": "", "task": "", "level": "info", "message": message, "attempt": 1,
        "at": timezone.now().isoformat()})


def test_a_dropped_socket_resumes_from_the_last_synced_id_and_gets_what_the_layer_dropped(
        page, login_as, alice, acme, monkeypatch):
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 3600)  # no catch-up round repairs it first
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    sockets = []  # (url, the route) of each socket the page opens
    told = []  # what the server sent, on any of them

    def route(ws):
        server = ws.connect_to_server()

        def relay(message):
            told.append(json.loads(message))
            ws.send(message)

        server.on_message(relay)
        sockets.append((ws.url, ws))

    page.route_web_socket("**/ws/**", route)
    login_as(alice)
    page.goto(f"/jobs/{job.public_id}/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    # "live" shows at the server's hello, before its replay reads the outbox: a line made before
    # that read would be replayed from the database, not dropped. The replay ends with "synced".
    deadline = time.monotonic() + 10
    while not any(message["type"] == "synced" for message in told):
        assert time.monotonic() < deadline, f"no synced after the replay: {told}"
        page.wait_for_timeout(20)
    first_since = int(parse_qs(urlsplit(sockets[-1][0]).query)["since"][0])

    # Dropped by the layer: the relay's cursor passes it without sending it.
    with transaction.atomic():
        dropped = _log_line(acme, job, 9001, "the line the layer dropped")
        RelayCursor.objects.filter(name=CURSOR_NAME).update(last_id=dropped.id)
    delivered = _log_line(acme, job, 9002, "the line delivered")
    lines = page.locator("#log-groups .log-line .message")
    expect(lines).to_have_text(["the line delivered"])

    opened = len(sockets)
    sockets[-1][1].close()  # the connection breaks (a proxy, a laptop lid)
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator('[data-log-id="9001"] .message')).to_have_text("the line the layer dropped", timeout=10_000)
    assert page.locator('[data-log-id="9002"]').count() == 1  # replayed again, applied once
    resumed = int(parse_qs(urlsplit(sockets[-1][0]).query)["since"][0])
    assert len(sockets) == opened + 1 and first_since <= resumed < dropped.id < delivered.id
