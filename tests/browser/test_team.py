"""The issue's browser walk: log in, switch team, create a token and see its secret once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from pulse_site.teams.models import ApiToken
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

# Set PULSE_SCREENSHOTS=/some/dir to keep screenshots of the pages at desktop and phone width.
SHOTS = os.environ.get("PULSE_SCREENSHOTS", "")


def check_layout(page, name: str) -> None:
    """At desktop and phone width nothing widens the page (wide tables scroll inside their box)."""
    for width in (1280, 375):
        page.set_viewport_size({"width": width, "height": 800 if width > 400 else 740})
        assert page.evaluate("document.documentElement.scrollWidth") == width, f"{name} at {width} px"
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{SHOTS}/{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def test_alice_switches_team_and_sees_a_new_tokens_secret_once(page, login_as, alice, acme, umbrella):
    login_as(alice)
    header = page.locator(".site-header")
    assert page.locator("h1").inner_text() == "Acme"
    check_layout(page, "overview")

    page.select_option("#team-switcher-select", label="Umbrella")
    page.click(".team-switcher button")
    page.wait_for_url("/")
    assert page.locator("h1").inner_text() == "Umbrella"
    assert header.locator("#team-switcher-select option:checked").inner_text() == "Umbrella"

    page.select_option("#team-switcher-select", label="Acme")
    page.click(".team-switcher button")
    page.wait_for_url("/")
    assert page.locator("h1").inner_text() == "Acme"

    page.click(".site-nav >> text=Team")
    page.wait_for_url("/team/")
    page.fill("#id_name", "deploy bot")
    page.check("input[name=access][value=write]")
    page.click("#token-create button[type=submit]")
    page.wait_for_url("/team/")

    token = ApiToken.objects.get(team=acme, name="deploy bot")
    assert token.access == ApiToken.Access.WRITE
    secret = page.locator("#new-token-secret").inner_text()
    assert secret.startswith(token.prefix) and len(secret) > len(token.prefix) + 20
    row = page.locator(f"#token-{token.public_id}")
    assert row.locator("td").nth(2).inner_text() == "Read and write"
    check_layout(page, "team")
    # On a phone the members and tokens are cards, each cell under its column's name, nothing
    # (a Remove or Revoke button) past the edge of a box scrolled sideways.
    page.set_viewport_size({"width": 375, "height": 740})
    for table in ("#members", "#tokens"):
        assert page.evaluate(f"(w => w.scrollWidth <= w.clientWidth)(document.querySelector('{table} .table-wrap'))")
    status = row.locator('td[data-label="Status"]')
    assert page.evaluate("(td) => getComputedStyle(td, '::before').content", status.element_handle()) == '"Status"'
    for button in (row.get_by_role("button", name="Revoke"), page.locator("#members").get_by_role("button", name="Remove").first):
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375
    page.set_viewport_size({"width": 1280, "height": 800})

    page.reload()
    assert page.locator("#new-token-secret").count() == 0
    assert secret not in page.content()
    assert page.locator(f"#token-{token.public_id} code").inner_text() == f"{token.prefix}…"


def test_another_tab_of_the_session_keeps_its_team_after_a_switch_says_so_and_follows_once_loaded_again(
        page, login_as, alice, acme, umbrella):
    """It kept the old team's stream and redrew the new team's parts into the old team's page; then
    it was loaded again under the user, which turned a job's page into the new team's 404. Now it
    stays as drawn, as its forms are refused (409), and says so; loading it again follows."""
    login_as(alice)
    page.goto("/jobs/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    other = page.context.new_page()
    other.goto("/team/")
    other.select_option("#team-switcher-select", label="Umbrella")
    other.click(".team-switcher button")
    other.wait_for_url("/")
    expect(other.locator("h1")).to_have_text("Umbrella")
    expect(page.locator("#live-notice")).to_contain_text("this page still shows Acme, no longer live")
    expect(page.locator("#team-switcher-select option:checked")).to_have_text("Acme")
    page.reload()
    expect(page.locator("#team-switcher-select option:checked")).to_have_text("Umbrella")
    page.wait_for_selector("#live-indicator[data-state=live]")
    expect(page.locator("#live-notice")).to_be_hidden()
    assert page.url.endswith("/jobs/")
    other.close()


def test_a_members_open_page_follows_their_role_change(page, browser, asgi_server, login_as, alice, bob, acme):
    """Its socket was sent what the old role sees (an admin made a viewer went on hearing of the
    team's tokens) and the page offered what the old role could do: both are opened again."""
    login_as(bob)
    page.goto("/jobs/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    expect(page.locator('a.button[href="/jobs/new/"]')).to_be_visible()
    owner = browser.new_context(base_url=asgi_server.url, bypass_csp=True).new_page()
    owner.goto("/login/")
    owner.fill("#id_username", "alice")
    owner.fill("#id_password", PASSWORD)
    owner.click("button[type=submit]")
    owner.wait_for_url("/")
    owner.goto("/team/")
    owner.select_option(f"#role-{bob.pk}", "viewer")
    owner.click(f"#member-{bob.pk} form button[type=submit]")
    expect(owner.locator(f"#member-{bob.pk} .role")).to_have_text("Viewer")
    # Bob's page is loaded again, as a viewer's: no "New job".
    expect(page.locator('a.button[href="/jobs/new/"]')).to_have_count(0)
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    assert page.url.endswith("/jobs/")
    owner.context.close()
