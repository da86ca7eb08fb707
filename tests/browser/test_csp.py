"""The Content-Security-Policy in a real browser: every dashboard page and Swagger UI load and run
without one violation (no inline script or style slipped in), and the live socket still connects."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs.services import job_submit
from schedules.services import schedule_create
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def strict_page(asgi_server, browser):
    """Like `page`, but the policy is enforced (the shared fixture bypasses it for Playwright's eval)."""
    context = browser.new_context(base_url=asgi_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def test_no_page_breaks_the_content_security_policy(strict_page, alice, acme):
    page = strict_page
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    schedule = schedule_create(team=acme, name="Nightly", handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
    violations: list[str] = []

    def watch(tab) -> None:
        tab.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        tab.on("pageerror", lambda e: violations.append(str(e)))

    watch(page)
    log_in(page, alice)
    # Every page in a tab of its own, all open at once, so that their half-second networkidle
    # waits pass side by side; each is watched until the end of the test.
    tabs = []
    for url in ("/", "/jobs/", f"/jobs/{job.public_id}/", "/jobs/new/", "/schedules/", "/schedules/new/",
                "/schedules/new/?handler=demo.report", f"/schedules/{schedule.public_id}/", "/budget/", "/team/",
                "/account/password/"):
        tabs.append(tab := page.context.new_page())
        watch(tab)
        tab.goto(url)
    for tab in tabs:
        tab.wait_for_load_state("networkidle")
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Pulse API")
    assert violations == []


def test_the_budget_bars_are_drawn_without_inline_styles(strict_page, alice, acme):
    from budgets.services import budget_policy_update

    page = strict_page
    budget_policy_update(team=acme, changes={"daily_limit": "10"}, by=None)
    log_in(page, alice)
    page.goto("/budget/")
    bar = page.locator(".budget-bar").first
    expect(bar).to_be_visible()
    box = bar.bounding_box()
    assert box is not None and box["width"] > 100 and 10 <= box["height"] <= 14
