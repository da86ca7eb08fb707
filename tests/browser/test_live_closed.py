"""A page whose socket is refused (signed out, no longer in the team) says its live updates have
stopped, and stops: trying again would be refused again, every 30 s for as long as the tab is open."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from playwright.sync_api import expect

from pulse_site.live import consumers

pytestmark = pytest.mark.browser


def test_a_socket_refused_on_reconnecting_stops_and_says_why(page, login_as, bob, acme, monkeypatch):
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 3600)  # the refusal comes from the reconnect
    sockets = []

    def route(ws):
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket("**/ws/**", route)
    login_as(bob)
    page.goto("/jobs/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    opened = len(sockets)
    Session.objects.all().delete()  # signed out elsewhere (an admin, a session cleanup)
    sockets[-1].close()  # and the connection breaks: the reconnect is refused with 4401
    indicator = page.locator("#live-indicator")
    expect(indicator).to_have_attribute("data-state", "closed", timeout=10_000)
    expect(indicator).to_have_text("closed: signed out")
    assert len(sockets) == opened + 1  # the one refused reconnect
