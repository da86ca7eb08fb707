"""The budget page in a real browser: a low daily limit holds a job with its reason and a
countdown; raising the limit releases it and the page follows it running, without a reload; the
alert banner comes and goes live."""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connection
from playwright.sync_api import expect

import jobs.runner
from budgets.services import budget_policy_update
from jobs.handlers.registry import handler, unregister
from jobs.models import Job
from jobs.services import job_submit
from tests.browser.test_team import check_layout

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def paid_handler():
    handler("test.browser_paid", title="A paid call", cost=lambda payload: payload.get("cost", "0.20"),
            max_attempts=1)(lambda ctx: {"ok": True})
    yield
    unregister("test.browser_paid")


def run(job_id: str) -> None:
    """The real worker code path, in a thread, because the browser tests' server runs no worker."""
    thread = threading.Thread(target=lambda: (jobs.runner.run_job(job_id), connection.close()), daemon=True)
    thread.start()
    thread.join(timeout=15)


def save_daily_limit(page, amount: str) -> None:
    page.fill("#id_daily_limit", amount)
    page.click("#budget-settings-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Budget settings saved.")
    page.wait_for_selector("#live-indicator[data-state=live]")


def test_a_held_job_shows_its_reason_and_countdown_and_runs_once_the_limit_is_raised(page, login_as, alice, acme):
    login_as(alice)
    page.goto("/budget/")
    save_daily_limit(page, "0.30")
    today = page.locator('#budget-live .budget-window[data-window="day"][data-scope=""]')
    expect(today).to_contain_text("0 of 0.3 (0.0 %)")

    first, second = (job_submit(team=acme, handler="test.browser_paid", payload={}, source="api").job for _ in "ab")
    run(first.public_id)
    expect(today).to_contain_text("0.2 of 0.3 (66.7 %)")
    run(second.public_id)
    assert Job.objects.get(pk=second.pk).status == Job.Status.PAUSED

    row = page.locator(f'#held-jobs tr[data-job-id="{second.public_id}"]')
    expect(row).to_contain_text("over the team's daily limit of 0.3")
    expect(row.locator(".countdown")).to_have_text(re.compile(r"^\d+[hms]( \d+[ms])?$"))
    expect(today.locator(".countdown")).to_have_text(re.compile(r"^\d+[hms]( \d+[ms])?$"))
    check_layout(page, "budget-held")

    save_daily_limit(page, "1.00")
    expect(page.locator("#held-empty")).to_be_visible()
    assert Job.objects.get(pk=second.pk).status == Job.Status.QUEUED
    page.evaluate("window.__sameDocument = true")
    run(second.public_id)
    expect(today).to_contain_text("0.4 of 1 (40.0 %)")
    assert Job.objects.get(pk=second.pk).status == Job.Status.COMPLETED
    assert page.evaluate("window.__sameDocument") is True
    page.reload()
    expect(page.locator("#budget-history tbody tr").first).to_contain_text("0.4")
    check_layout(page, "budget-after")


def test_the_alert_banner_comes_up_live_as_a_job_crosses_a_threshold_and_goes_when_the_limit_is_raised(
        page, login_as, alice, acme):
    """On a page with no live script of its own (/team/), without a reload."""
    budget_policy_update(team=acme, changes={"daily_limit": "1.00"}, by=None)
    login_as(alice)
    page.goto("/team/")
    page.wait_for_selector("body[data-live=live]")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#budget-alerts")).to_have_count(0)

    run(job_submit(team=acme, handler="test.browser_paid", payload={"cost": "0.85"}, source="api").job.public_id)
    expect(page.locator("#budget-alerts")).to_contain_text("The team reached 80 % of its daily limit of 1")
    expect(page.locator("#budget-alerts")).to_contain_text("(0.85 spent then)")

    budget_policy_update(team=acme, changes={"daily_limit": "5.00"}, by=None)  # another owner, elsewhere
    expect(page.locator("#budget-alerts")).to_have_count(0)
    assert page.evaluate("window.__sameDocument") is True


# Elements whose words change on a clock (relative times, countdowns) inside a live region: each
# change would be read out, every minute or every second, with nothing having happened.
TICKING_IN_LIVE_REGIONS = """() => [...document.querySelectorAll("time[data-relative], time[data-countdown], time[data-elapsed]")]
  .filter((t) => t.closest('[role=status], [role=alert], [role=log], [aria-live]:not([aria-live=off])'))
  .map((t) => t.closest('[id]').id)"""


def test_the_alert_banner_is_announced_once_when_it_changes_and_its_clocks_never(page, login_as, alice, acme):
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from budgets.models import Alert
    from budgets.services import alert_payload
    from budgets.windows import window_at
    from pulse_site.live.services import event_emit

    now = timezone.now()
    day = window_at("day", now, zone=ZoneInfo(acme.time_zone))  # the banner shows the current window's alerts
    policy = budget_policy_update(team=acme, changes={"daily_limit": "1.00", "alert_thresholds": [50, 80]}, by=None)
    limit = policy.daily_limit
    Alert.objects.create(team=acme, window_kind="day", window_start=day.start,
                         window_end=day.end, threshold=50, spent=limit // 2, limit=limit, at=now)
    login_as(alice)
    page.wait_for_selector("#live-indicator[data-state=live]")
    expect(page.locator("#budget-alerts")).to_contain_text("50 %")
    assert page.evaluate(TICKING_IN_LIVE_REGIONS) == []

    # A policy event that leaves the banner as it was says nothing...
    page.evaluate("window.__banner = document.getElementById('budget-alerts')")
    budget_policy_update(team=acme, changes={"weekly_limit": "9.00"}, by=None)
    page.wait_for_function("document.getElementById('budget-alerts') !== window.__banner")
    assert page.text_content("#budget-alerts-announce") == ""
    # ...a new alert says the banner's new words, once.
    alert = Alert.objects.create(team=acme, window_kind="day", window_start=day.start,
                                 window_end=day.end, threshold=80, spent=limit * 4 // 5, limit=limit, at=now)
    event_emit(team=acme.pk, kind="budget.alert", subject="team", payload=alert_payload(alert))
    expect(page.locator("#budget-alerts")).to_contain_text("80 %")
    announced = page.locator("#budget-alerts-announce")
    expect(announced).to_contain_text("80 %")
    assert page.get_attribute("#budget-alerts-announce", "role") == "status"
    assert page.evaluate(TICKING_IN_LIVE_REGIONS) == []


def test_the_budget_pages_live_redraw_keeps_keyboard_focus_on_a_held_jobs_link(page, login_as, alice, acme):
    from datetime import timedelta

    from django.utils import timezone

    held = Job.objects.create(team=acme, handler="demo.report", status=Job.Status.PAUSED, cost_estimate=2_000_000,
                              hold_reasons=[{"kind": "budget", "message": "Today's limit of 1.00 would be exceeded"}],
                              resume_at=timezone.now() + timedelta(hours=3))
    login_as(alice)
    page.goto("/budget/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    link = page.locator(f'#budget-live a[href$="/jobs/{held.public_id}/"]')
    link.focus()
    page.evaluate("window.__live = document.getElementById('budget-live').firstElementChild")
    job_submit(team=acme, handler="test.browser_paid", payload={}, source=Job.Source.API)
    page.wait_for_function("document.getElementById('budget-live').firstElementChild !== window.__live")
    assert page.evaluate("document.activeElement.getAttribute('href')") == f"/jobs/{held.public_id}/"


def test_amounts_are_grouped_by_thousands_as_drawn_and_as_they_change_live_and_the_input_stays_plain(
        page, login_as, alice, acme):
    budget_policy_update(team=acme, changes={"daily_limit": "999999999.99"}, by=None)
    login_as(alice)
    page.goto("/budget/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    today = page.locator('#budget-live .budget-window[data-window="day"][data-scope=""]')
    expect(today).to_contain_text("0 of 999,999,999.99 (0.0 %)")
    expect(page.locator("#id_daily_limit")).to_have_value("999999999.99")

    job = job_submit(team=acme, handler="test.browser_paid", payload={"cost": "1234567.5"}, source="api").job
    run(job.public_id)
    expect(today).to_contain_text("1,234,567.5 of 999,999,999.99 (0.1 %)")
    expect(today).to_contain_text("remaining 998,765,432.49")


def test_on_a_phone_a_held_jobs_reason_and_resume_are_read_without_scrolling_the_table(page, login_as, alice, acme):
    budget_policy_update(team=acme, changes={"daily_limit": "0.30"}, by=None)
    first, second = (job_submit(team=acme, handler="test.browser_paid", payload={}, source="api").job for _ in "ab")
    run(first.public_id)
    run(second.public_id)
    page.set_viewport_size({"width": 390, "height": 844})
    login_as(alice)
    page.goto("/budget/")
    row = page.locator(f'#held-jobs tr[data-job-id="{second.public_id}"]')
    # Each cell on a line of its own under its column's name: the reason was the fourth of five
    # columns, past the screen's edge in a table scrolled sideways.
    for name, text in (("Why", "over the team's daily limit of 0.3"), ("Resumes", "in ")):
        cell = row.locator(f'td[data-label="{name}"]')
        expect(cell).to_contain_text(text)
        box = cell.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert page.evaluate("(td) => getComputedStyle(td, '::before').content", cell.element_handle()) == f'"{name}"'
    assert page.evaluate("document.querySelector('#held-jobs').closest('.table-wrap').scrollWidth <= 390")
