"""A page whose live updates end because its user's access to the page's team ended says so, in
words, and keeps what it shows: it never goes on with another of the user's teams. bob is in Acme
and in Umbrella (alice's); his pages show Acme (his first team)."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from jobs.services import job_submit
from pulse_site.live import consumers
from pulse_site.live.services import event_emit
from pulse_site.teams.models import Membership
from pulse_site.teams.services import membership_add, membership_remove

pytestmark = pytest.mark.browser


@pytest.fixture
def bob_in_umbrella(bob, umbrella):
    membership_add(team=umbrella, user=bob, role=Membership.Role.MEMBER, by=None)


def in_another_thread(call) -> None:
    """As a request of another person would: the service's close message (async_to_sync) cannot be
    sent from this thread, whose event loop Playwright keeps marked as running."""
    thread = threading.Thread(target=call)
    thread.start()
    thread.join(timeout=10)


def test_a_member_removed_while_on_a_page_is_told_they_no_longer_have_access(page, login_as, bob, acme,
                                                                             bob_in_umbrella):
    login_as(bob)
    page.goto("/jobs/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    page.evaluate("window.__drawn = true")
    in_another_thread(lambda: membership_remove(membership=Membership.objects.get(team=acme, user=bob), by=None))
    expect(page.locator("#live-notice")).to_have_text("You no longer have access to Acme.")
    expect(page.locator("#live-notice")).to_be_visible()
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "closed")
    assert page.evaluate("window.__drawn") is True  # not reloaded into Umbrella


def test_a_removed_members_page_reconnecting_is_refused_and_never_shows_their_other_team(
        page, login_as, bob, acme, umbrella, bob_in_umbrella, monkeypatch):
    """Removed while the connection was down (the close message never reached the page)."""
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 3600)  # the refusal comes from the reconnect
    sockets = []

    def route(ws):
        ws.connect_to_server()
        sockets.append((ws.url, ws))

    page.route_web_socket("**/ws/**", route)
    login_as(bob)
    page.goto("/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    Membership.objects.filter(team=acme, user=bob).delete()
    job = job_submit(team=umbrella, handler="pulse.noop", payload={}, source="api").job
    sockets[-1][1].close()
    expect(page.locator("#live-notice")).to_have_text("You no longer have access to Acme.", timeout=10_000)
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "closed")
    assert parse_qs(urlsplit(sockets[-1][0]).query)["team"] == [acme.public_id]
    event_emit(team=umbrella, kind="job.updated", subject=job.public_id)
    page.wait_for_timeout(500)  # an event would be drawn within this; none may come
    assert page.get_by_text(job.public_id).count() == 0


def test_a_page_left_on_the_team_switched_from_in_another_tab_stays_as_drawn_and_says_so(
        page, login_as, bob, acme, bob_in_umbrella):
    """As its forms are refused then (409, "this page was drawn for Acme"): a reload would turn a
    job's page into Umbrella's 404, and its redraws would fetch Umbrella's rows into it."""
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    login_as(bob)
    page.goto(f"/jobs/{job.public_id}/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    page.evaluate("window.__drawn = true")
    other_tab = page.context.new_page()
    other_tab.goto("/")
    other_tab.select_option("#team-switcher-select", label="Umbrella")
    other_tab.click(".team-switcher button")
    other_tab.wait_for_url("/")
    expect(page.locator("#live-notice")).to_have_text(
        "This browser now shows another team (switched in another tab): this page still shows Acme, "
        "no longer live. Load it again to follow the team switched to.")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "closed")
    assert page.evaluate("window.__drawn") is True
    assert page.url.endswith(f"/jobs/{job.public_id}/")


def test_signing_out_in_another_tab_tells_the_page_at_once(page, login_as, bob, acme, monkeypatch):
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 3600)  # told by the sign-out, not a round
    login_as(bob)
    page.goto("/jobs/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    other_tab = page.context.new_page()
    other_tab.goto("/")
    other_tab.click(".user-tools form[action='/logout/'] button")
    expect(page.locator("#live-notice")).to_have_text("You were signed out. Sign in again to follow Acme live.")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "closed")
