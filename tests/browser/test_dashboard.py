"""The dashboard's journeys in Chromium: overview, search, bulk retry, theme, shortcuts, phone width,
and every main page free of console errors and failed requests in both themes.

PULSE_SCREENSHOTS=docs/screenshots also writes the README's screenshots (1280 px, both themes)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from budgets.models import Ledger
from budgets.services import budget_override_create, budget_policy_update
from jobs.models import Job, JobStat, TaskLog
from jobs.services import job_cancel, job_submit
from pulse_site.models import UserPreference
from schedules.models import Schedule
from schedules.services import schedule_create

pytestmark = pytest.mark.browser
S = Job.Status
SHOTS = os.environ.get("PULSE_SCREENSHOTS", "")


def seed(team) -> dict[str, object]:
    """A team with some history: finished, failed, held, running and queued jobs, a schedule."""
    now = timezone.now()
    # A handler's cap and an override: their Remove cap and End now buttons are audited too.
    budget_policy_update(team=team, changes={"daily_limit": "5.00", "weekly_limit": "20.00",
                                             "handler_caps": {"demo.report": {"daily": "2.00"}}}, by=None)
    budget_override_create(team=team, amount="3.00", expires_at=now + timedelta(hours=4),
                           reason="Quarter-end reports", by=None)
    schedule = Schedule.objects.for_team(team).first() or schedule_create(
        team=team, name="Nightly report", handler="pulse.noop", cron="*/10 * * * *")
    done = []
    for n in range(12):
        created = now - timedelta(minutes=5 * n + 2)
        done.append(Job.objects.create(
            team=team, handler="pulse.noop" if n % 3 else "demo.report", status=S.COMPLETED, created_at=created,
            started_at=created + timedelta(seconds=n % 4 + 1), completed_at=created + timedelta(seconds=n + 6),
            attempts=1, max_attempts=1, progress_current=3, progress_total=3, payload={"user": n}))
    failed = [
        Job.objects.create(team=team, handler="pulse.fail", status=S.FAILED, created_at=now - timedelta(minutes=n),
                           started_at=now - timedelta(minutes=n), completed_at=now - timedelta(minutes=n) + timedelta(seconds=2),
                           attempts=2, max_attempts=2, error_code="network_error", error_retryable=True,
                           error_message="Connection reset by peer (upstream 10.0.0.7:443)", payload={"region": "eu", "n": n})
        for n in range(1, 4)
    ]
    Job.objects.create(team=team, handler="pulse.fail", status=S.FAILED, completed_at=now, error_code="parse_error",
                       error_message="Unexpected token", payload={"region": "us"})
    Job.objects.create(team=team, handler="demo.report", status=S.PAUSED, cost_estimate=2_000_000,
                       hold_reasons=[{"kind": "budget", "message": "Today's limit of 5.00 would be exceeded"}],
                       resume_at=now + timedelta(hours=3))
    Job.objects.create(team=team, handler="pulse.sleep", status=S.RUNNING, started_at=now, progress_current=1,
                       progress_total=3, progress_message="step 1 of 3")
    Job.objects.create(team=team, handler="pulse.noop", status=S.QUEUED)
    TaskLog.objects.create(job=done[0], stage="collect", task="fetch", message="Fetched 120 rows")
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for d in range(0, 30, 2):
        for number, handler in enumerate(("demo.report", "pulse.sleep")):
            Ledger.objects.create(team=team, job_id=f"JB_SEED{d:02d}{number}", handler=handler, attempt=1,
                                  kind=Ledger.Kind.CHARGE, window_kind="day", window_start=today - timedelta(days=d),
                                  window_end=today - timedelta(days=d - 1), amount=(d % 5 + 1) * 40_000 * (number + 1),
                                  # charged in its day, not now: the budget's pace reads the last hour's charges
                                  at=min(now - timedelta(hours=2), today - timedelta(days=d, hours=-12)))
    hour = now.replace(minute=0, second=0, microsecond=0)
    for h in range(0, 168, 5):
        JobStat.objects.create(team=team, handler="pulse.noop", hour=hour - timedelta(hours=h),
                               completed=10 + h % 17, failed=h % 4)
    return {"job": done[0], "failed": failed, "schedule": schedule}


def watch_errors(page, problems: list[str] | None = None) -> list[str]:
    """The page's console errors, uncaught errors, failed requests and error responses, as they
    happen, in `problems` (a new list unless one is given: several tabs can share one)."""
    problems = [] if problems is None else problems
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # ERR_ABORTED is the browser's own cancel: a live update's fetch (the budget banner's, say)
    # still in flight when the test goes to the next page. A server's failure is a response below.
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url}: {r.failure}")
            if r.failure != "net::ERR_ABORTED" else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return problems


def test_alice_logs_in_and_lands_on_the_overview_with_counters_charts_and_failures(page, login_as, alice, acme):
    data = seed(acme)
    login_as(alice)

    assert page.locator("#count-queued").inner_text() == "1"
    assert page.locator("#count-running").inner_text() == "1"
    assert page.locator("#count-held").inner_text() == "1"
    assert page.locator("#count-failed-hour").inner_text() == "4"
    assert page.locator("#overview-charts svg").count() == 3
    assert page.locator(f'#recent-failures a[href="/jobs/{data["failed"][0].public_id}/"]').count() == 1
    page.wait_for_selector("#live-indicator[data-state=live]")

    # A job submitted now shows in the counters without a reload (the fragment is re-fetched).
    Job.objects.create(team=acme, handler="pulse.noop", status=S.QUEUED)
    from jobs.events import job_event

    job_event(Job.objects.filter(team=acme).first(), "submitted")
    page.wait_for_selector("#count-queued:text-is('2')")


def test_bulk_retry_of_every_failed_job_matching_a_filter_shows_progress(page, login_as, alice, acme):
    seed(acme)
    login_as(alice)
    page.goto("/jobs/?status=failed&handler=pulse.fail")
    assert page.locator("#matching-count").inner_text() == "4"

    page.select_option("#bulk-matching-action", "retry")
    page.check("#bulk-matching-confirm")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#bulk-matching-submit")

    page.wait_for_selector("#bulk-matching[data-finished=yes]")
    assert page.locator("#bulk-status").inner_text() == "Finished: 4 done, 0 refused (not in a state for this action)."
    assert Job.objects.filter(team=acme, handler="pulse.fail", status=S.FAILED).count() == 0
    assert Job.objects.filter(team=acme, handler="pulse.fail", status=S.QUEUED).count() == 4
    # What the filter matches now: none of them are failed any more.
    expect(page.locator("#matching-count")).to_have_text("0")
    expect(page.locator("#job-rows tr")).to_have_count(0)
    expect(page.locator("#jobs-empty")).to_be_visible()


def test_a_live_row_whose_job_leaves_the_filter_says_so(page, login_as, alice, acme):
    held = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    Job.objects.filter(pk=held.pk).update(status=S.PAUSED)
    login_as(alice)
    page.goto("/jobs/?status=paused")
    page.wait_for_selector("#live-indicator[data-state=live]")
    row = page.locator(f'tr[data-job-id="{held.public_id}"]')
    expect(row).not_to_have_attribute("data-unmatched", "yes")

    job_cancel(job=Job.objects.get(pk=held.pk), by="bob")
    expect(row.locator('[data-field="status"]')).to_have_text("Cancelled")
    expect(row).to_have_attribute("data-unmatched", "yes")


def test_the_dark_theme_is_remembered_across_a_reload(page, login_as, alice, acme):
    login_as(alice)
    page.emulate_media(color_scheme="light")
    background = "getComputedStyle(document.body).backgroundColor"
    assert page.evaluate(background) == "rgb(255, 255, 255)"

    page.click("#theme-toggle")
    page.wait_for_selector("html[data-theme=dark]", state="attached")
    assert page.evaluate(background) == "rgb(18, 18, 18)"
    assert page.locator("#theme-announce").text_content() == "Theme: dark"  # said, not only redrawn
    page.reload()

    assert page.get_attribute("html", "data-theme") == "dark"
    assert page.evaluate(background) == "rgb(18, 18, 18)"
    assert page.locator("#theme-toggle").inner_text() == "Theme: dark"
    assert UserPreference.objects.get(user=alice).theme == "dark"


def test_slash_search_by_id_g_j_and_question_mark_and_the_jobs_list_fits_a_phone(page, login_as, alice, acme):
    data = seed(acme)
    login_as(alice)

    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "site-search-q"
    page.keyboard.type(data["job"].public_id)
    page.keyboard.press("Enter")
    page.wait_for_url(f"/jobs/{data['job'].public_id}/")

    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("g")
    page.keyboard.press("j")
    page.wait_for_url("/jobs/")

    page.set_viewport_size({"width": 375, "height": 740})
    page.goto("/jobs/?status=failed")
    assert page.evaluate("document.documentElement.scrollWidth") == 375
    assert page.locator("#job-rows tr").count() == 4


def dashboard_pages(data: dict[str, object]) -> dict[str, str]:
    """Every page a team member can open (for alice, an owner), by name."""
    job, schedule = data["job"], data["schedule"]
    return {
        "overview": "/", "jobs": "/jobs/", "jobs-filtered": "/jobs/?q=failed+region%3Deu",
        "job": f"/jobs/{job.public_id}/", "new-job": "/jobs/new/", "new-job-form": "/jobs/new/?handler=pulse.sleep",
        "schedules": "/schedules/", "schedule": f"/schedules/{schedule.public_id}/", "new-schedule": "/schedules/new/",
        "new-schedule-form": "/schedules/new/?handler=http.request",
        "edit-schedule": f"/schedules/{schedule.public_id}/edit/", "budget": "/budget/", "team": "/team/",
        "queue": "/queue/", "handlers": "/handlers/", "handler": "/handlers/pulse.fail/", "notifications": "/notifications/", "password": "/account/password/",
    }


def test_every_page_has_no_console_errors_no_failed_requests_and_fits_a_phone_in_both_themes(page, login_as, alice,
                                                                                               acme):
    data = seed(acme)
    problems = watch_errors(page)
    login_as(alice)
    for theme in ("light", "dark"):
        UserPreference.objects.update_or_create(user=alice, defaults={"theme": theme})
        # Every page in a tab of its own (same session, 1280 px), all open at once: a page counts as
        # settled after half a second without a request (networkidle), and those half seconds pass
        # side by side instead of one after another (18 s of a 28 s test).
        tabs = {}
        for name, url in dashboard_pages(data).items():
            tabs[name] = tab = page.context.new_page()
            watch_errors(tab, problems)
            tab.goto(url)
        for name, tab in tabs.items():
            tab.wait_for_load_state("networkidle")
            assert tab.get_attribute("html", "data-theme") == theme
            if SHOTS and name in ("overview", "jobs", "job", "handler", "schedules", "budget"):
                Path(SHOTS).mkdir(parents=True, exist_ok=True)
                tab.screenshot(path=f"{SHOTS}/{name}-{theme}.png", full_page=True)
            # Phone width: nothing wider than the screen (tables scroll inside their own box).
            tab.set_viewport_size({"width": 375, "height": 740})
            width = tab.evaluate("document.documentElement.scrollWidth")
            if width != 375:
                problems.append(f"{name} ({theme}) is {width} px wide at 375 px")
            tab.close()
    assert problems == []


def test_jobs_deleted_in_bulk_leave_the_open_list_without_a_reload(page, login_as, alice, acme):
    seed(acme)
    login_as(alice)
    page.goto("/jobs/?status=completed")
    page.wait_for_selector("#live-indicator[data-state=live]")
    assert page.locator("#job-rows tr").count() == 12

    page.select_option("#bulk-matching-action", "delete")
    page.check("#bulk-matching-confirm")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#bulk-matching-submit")

    page.wait_for_selector("#bulk-matching[data-finished=yes]")
    page.wait_for_selector("#job-rows tr", state="detached")
    assert page.locator("#bulk-status").inner_text() == "Finished: 12 done, 0 refused (not in a state for this action)."
    assert not Job.objects.filter(team=acme, status=S.COMPLETED).exists()
    # Screen readers hear the start and the end, not every batch's count (the count is no live region).
    assert page.locator("#bulk-announce").text_content() == page.locator("#bulk-status").inner_text()
    assert page.locator("#bulk-status").get_attribute("aria-live") is None


def test_relative_times_over_a_day_count_the_viewers_calendar_days(page, login_as, alice, acme):
    """02:30 the day after tomorrow reads "in 2 days", not "tomorrow" (35 hours rounded to a day)."""
    login_as(alice)
    page.goto("/")
    texts = page.evaluate("""() => {
      const at = (days, hour, minute) => {
        const d = new Date(); d.setDate(d.getDate() + days); d.setHours(hour, minute, 0, 0); return d;
      };
      const cases = [at(2, 2, 30), at(2, 23, 30), at(-2, 23, 59), at(-3, 0, 1), at(9, 12, 0)];
      return cases.map((when) => {
        const el = document.createElement("time");
        el.setAttribute("datetime", when.toISOString());
        el.setAttribute("data-relative", "");
        document.body.appendChild(el);
        window.PulseApp.refreshTimes(el);
        return el.textContent;
      });
    }""")
    assert texts == ["in 2 days", "in 2 days", "2 days ago", "3 days ago", "in 9 days"]


def test_the_first_tab_offers_a_visible_skip_to_the_page_past_the_header(page, login_as, alice, acme):
    login_as(alice)
    page.goto("/jobs/")
    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    expect(skip).to_have_text("Skip to the page")
    box = skip.bounding_box()
    assert box and box["width"] > 20 and box["height"] > 10 and box["y"] >= 0  # seen when focused
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.querySelector('main').contains(document.activeElement)")


def test_the_facts_in_a_box_sit_inside_its_padding_for_a_viewer_and_an_owner(page, login_as, alice, vic, acme):
    """A viewer's budget settings and every team's retention ages were drawn against the box's edge."""
    seed(acme)
    budget_policy_update(team=acme, changes={"daily_limit": "5"}, by=None)
    for user in (vic, alice):
        login_as(user)
        for url in ("/", "/budget/", "/team/", "/handlers/pulse.sleep/"):
            page.goto(url)
            flush = page.evaluate("""() => [...document.querySelectorAll('.module dl')].filter((dl) => {
              const box = dl.closest('.module').getBoundingClientRect();
              return dl.getBoundingClientRect().left - box.left < 8;
            }).map((dl) => dl.id || dl.textContent.trim().slice(0, 30))""")
            assert flush == [], f"{url} as {user.username}"
        page.context.clear_cookies()
