"""Every dashboard page on a 320 px screen (a phone, or a 1280 px window at 400 % zoom), in both
themes, with the header's menu closed and open: nothing scrolls the page sideways (WCAG 2.1 1.4.10,
reflow: a wide table scrolls in its own box), every control is at least 24 × 24 px (WCAG 2.2 2.5.8,
target size), bar a link in running text, an empty table's note is read without scrolling it, and
no button's label breaks inside a word. Each problem names its element."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from budgets.services import budget_override_create
from jobs.models import Attempt, Job, QueuePause, WorkerBeat
from jobs.pausing import queue_pause, queue_resume
from jobs.services import job_submit
from pulse_site.models import UserPreference
from pulse_site.notifications.services import rule_create, target_create, target_send_test
from schedules.services import schedule_trigger
from tests.browser.test_dashboard import dashboard_pages, seed

pytestmark = pytest.mark.browser
PHONE = {"width": 320, "height": 640}

# What makes the page wider than the screen, the controls narrower or lower than 24 px and the
# buttons whose words break, as "element: why" lines.
#  - Overflow is named by the outermost elements reaching past the right edge that no scrolling
#    box of their own holds.
#  - A control's target is its box; a checkbox or radio button inside a <label> is clicked through
#    the label too, so the label's box is its target.
#  - A link shown inline among words (text of letters or digits outside any control in the same
#    block) is exempt: its height is the line's (2.5.8's "inline" exception). A link alone in a
#    cell, or beside another link with only a "·" between them, is not.
#  - A table with nothing to show says so within its scrolling box, not past its edge.
#  - A button's label wraps between its words, never inside one ("Can / cel").
FIND_PROBLEMS = r"""(scope) => {
  const root = document.documentElement;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\s+/).join(".") : "") +
    ' "' + String(el.textContent || el.value || el.name || el.getAttribute("aria-label") || "").trim().replace(/\s+/g, " ").slice(0, 40) + '"';
  const problems = [];

  if (root.scrollWidth > root.clientWidth) {
    const scrolls = (el) => { for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== "visible") return true; } return false; };
    const wide = [...document.body.querySelectorAll("*")].filter((el) =>
      el.getBoundingClientRect().right > root.clientWidth + 0.5 && !scrolls(el));
    const outermost = wide.filter((el) => !wide.some((other) => other !== el && other.contains(el)));
    problems.push(`the page is ${root.scrollWidth} px wide on a ${root.clientWidth} px screen: ` +
                  outermost.slice(0, 5).map(name).join(", "));
  }

  const CONTROL = "a, button, input:not([type=hidden]), select, textarea, summary";
  const inText = (link) => {
    if (link.tagName !== "A" || getComputedStyle(link).display !== "inline") return false;
    let block = link.parentElement;
    while (block && getComputedStyle(block).display.startsWith("inline")) block = block.parentElement;
    const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (!node.parentElement.closest(CONTROL) && /[\p{L}\p{N}]/u.test(node.textContent)) return true;
    }
    return false;
  };
  const controls = document.querySelector(scope).querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex='-1'])");
  for (const el of controls) {
    const own = el.getBoundingClientRect();
    if (own.width === 0 || own.height === 0 || el.closest(".visually-hidden")
        || getComputedStyle(el).visibility === "hidden") continue;
    const label = (el.type === "checkbox" || el.type === "radio") && el.closest("label");
    const box = label ? label.getBoundingClientRect() : own;
    if ((box.width >= 24 && box.height >= 24) || inText(el)) continue;
    problems.push(`${name(el)} is ${Math.round(box.width * 10) / 10} × ${Math.round(box.height * 10) / 10} px`);
  }

  const range = document.createRange();
  for (const cell of document.querySelector(scope).querySelectorAll(".table-wrap td.empty")) {
    range.selectNodeContents(cell);
    if (range.getBoundingClientRect().right > cell.closest(".table-wrap").getBoundingClientRect().right + 0.5) {
      problems.push(`${name(cell)} runs past the edge of its scrolling box`);
    }
  }
  for (const button of document.querySelector(scope).querySelectorAll("button, .button")) {
    for (const node of [...button.childNodes].filter((child) => child.nodeType === Node.TEXT_NODE)) {
      for (const word of node.textContent.matchAll(/\S+/g)) {
        range.setStart(node, word.index);
        range.setEnd(node, word.index + word[0].length);
        if (new Set([...range.getClientRects()].map((line) => Math.round(line.top))).size > 1) {
          problems.push(`${name(button)} breaks the word "${word[0]}" across lines`);
        }
      }
    }
  }
  return problems;
}"""


def problems_on(page, where: str, scope: str = "body") -> list[str]:
    """The page's overflow, and the problems of the controls within `scope` (a CSS selector)."""
    return [f"{where}: {problem}" for problem in page.evaluate(FIND_PROBLEMS, scope)]


def test_every_page_fits_a_320_px_screen_with_targets_of_24_px_in_both_themes(page, login_as, alice, acme):
    data = seed(acme)
    target = target_create(team=acme, name="Ops webhook", kind="webhook", address="https://hooks.example.com/pulse",
                           by=None)
    rule_create(team=acme, target=target, kind="job_failed", by=None)
    pages = {**dashboard_pages(data), "activity": "/activity/", "search": "/search/?q=failed",
             "jobs-refused-filter": "/jobs/?status=bogus&created_after=never"}
    page.set_viewport_size(PHONE)
    page.goto("/login/")
    problems = problems_on(page, "login")
    login_as(alice)
    for theme in ("light", "dark"):
        UserPreference.objects.update_or_create(user=alice, defaults={"theme": theme})
        for name, url in pages.items():
            page.goto(url)
            assert page.get_attribute("html", "data-theme") == theme
            problems += problems_on(page, f"{name} ({theme})")
            page.click("#menu-toggle")
            problems += problems_on(page, f"{name}, menu open ({theme})", ".site-header")
        # A refused form shows its errors beside its fields, and still fits.
        page.goto("/schedules/new/?handler=demo.report")
        page.fill("#id_name", "Morning report")
        page.fill("#id_cron", "61 9 * * *")
        page.click("#schedule-form button[type=submit]")
        page.wait_for_selector("#id_cron[aria-invalid=true]")
        problems += problems_on(page, f"refused schedule form ({theme})")
        # The shortcuts dialog fits the screen.
        page.keyboard.press("?")
        dialog = page.locator("#shortcuts").bounding_box()
        assert dialog is not None
        if dialog["x"] < 0 or dialog["x"] + dialog["width"] > PHONE["width"]:
            problems.append(f"shortcuts dialog ({theme}) spans {dialog['x']:.0f} to {dialog['x'] + dialog['width']:.0f} px")
        problems += problems_on(page, f"shortcuts dialog ({theme})", "#shortcuts")
    # The system page is an operator's: alice is one for it (and its header, with the admin link).
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    for theme in ("light", "dark"):
        UserPreference.objects.update_or_create(user=alice, defaults={"theme": theme})
        page.goto("/system/")
        problems += problems_on(page, f"system ({theme})")
    assert problems == [], "\n".join(problems)


# The tables whose rows are read one at a time, by page: on a phone each row is a card, each cell
# on a line of its own under its column's name, so nothing is read in a box scrolled sideways.
CARD_TABLES = {
    "/handlers/": ["#handlers table"],
    "job": ["#attempts", "#children table", "table.pulse-state"],
    "/handlers/http.request/": ["#payload-fields"],
    "schedule": ["#executions table"],
    "/budget/": ["#budget-history table", "#budget-overrides table", "#budget-changes table"],
    "/activity/": ["#activity-history table"],
    "/": ["#overview-charts table", "#activity table"],
    "/queue/": ["#queue-pauses", "#queue-history table"],
    "/notifications/": ["#targets table", "#rules table"],
    "/jobs/": ["#daemons table"],
    "/system/": ["#system-pauses table", "#system-teams table", "#system-workers table"],
}

# Each table as "table: why" lines: it has rows to show, it is no wider than its box, and each of
# its cells shows its column's name (its header's text), if it has one, before its value; a cell
# spanning columns shows their names ("Limit / Remaining"), with its value beside the name rather
# than under it. A row's header (a budget window's name) is its card's title: it shows no column's
# name and leaves no room for one. A caption spans the cards (left in a table's layout, it shrinks
# to a letter a line).
FIND_CARD_PROBLEMS = r"""(selectors) => {
  const problems = [];
  for (const selector of selectors) {
    const table = document.querySelector(selector);
    if (!table) { problems.push(`${selector}: not on the page`); continue; }
    const box = table.closest(".table-wrap");
    if (table.scrollWidth > box.clientWidth) {
      problems.push(`${selector} is ${table.scrollWidth} px wide in a box of ${box.clientWidth} px`);
    }
    const columns = [...table.tHead.rows[0].cells].map((th) => th.textContent.trim());
    const cells = [...table.tBodies[0].querySelectorAll(":scope > tr > td:not(.empty)")];
    if (!cells.length) problems.push(`${selector}: no rows to look at`);
    const shown = (td) => getComputedStyle(td, "::before").content;
    const first = (cell) => [...cell.parentElement.cells].slice(0, cell.cellIndex).reduce((n, c) => n + c.colSpan, 0);
    const names = (td) => columns.slice(first(td), first(td) + td.colSpan).filter(Boolean).join(" / ");
    // A column without a name (a row's buttons) shows none.
    const label = (td) => names(td) ? JSON.stringify(names(td)) : "none";
    const unlabelled = cells.filter((td) => shown(td) !== label(td));
    if (unlabelled.length) {
      const td = unlabelled[0];
      problems.push(`${selector}: ${unlabelled.length} of ${cells.length} cells do not show their column's name, ` +
                    `the first (row ${td.parentElement.sectionRowIndex + 1}) shows ${shown(td)} for "${names(td)}"`);
    }
    const range = document.createRange();
    const covered = cells.filter((td) => {
      const name = getComputedStyle(td, "::before");
      range.selectNodeContents(td);
      return name.content !== "none"
        && range.getBoundingClientRect().left < td.getBoundingClientRect().left + parseFloat(name.width);
    });
    if (covered.length) {
      problems.push(`${selector}: ${covered.length} of ${cells.length} cells start their value within their column's ` +
                    `name, the first "${covered[0].textContent.trim()}" under ${shown(covered[0])}`);
    }
    if (table.caption && table.caption.getBoundingClientRect().width < table.getBoundingClientRect().width - 0.5) {
      problems.push(`${selector}: its caption is ${Math.round(table.caption.getBoundingClientRect().width)} px wide, ` +
                    `the table ${Math.round(table.getBoundingClientRect().width)} px`);
    }
    for (const th of table.tBodies[0].querySelectorAll(":scope > tr > th")) {
      range.selectNodeContents(th);
      const indent = range.getBoundingClientRect().left - table.getBoundingClientRect().left;
      if (!["none", "normal"].includes(shown(th)) || indent > 10.5) {
        problems.push(`${selector}: the row header "${th.textContent.trim()}" shows ${shown(th)} and starts ` +
                      `${Math.round(indent)} px in, not as its card's title`);
      }
    }
  }
  return problems;
}"""


def card_problems(page, where: str, tables: list[str]) -> list[str]:
    return [f"{where}: {problem}" for problem in page.evaluate(FIND_CARD_PROBLEMS, tables)]


def test_on_a_phone_the_rows_read_one_at_a_time_are_cards_whose_cells_name_their_column(page, login_as, alice,
                                                                                          acme, temp_handler):
    """Drawn by the server, and drawn live (from the same partials) after the page has loaded."""
    data = seed(acme)

    @temp_handler("test.listener", daemon=True)
    def listener(ctx):
        return None

    Job.objects.create(team=acme, handler="test.listener", status=Job.Status.QUEUED, attempts=3,
                       run_after=timezone.now() + timedelta(seconds=30))
    failed = data["failed"][0]
    started = failed.started_at
    for number in (1, 2):
        Attempt.objects.create(job=failed, number=number, worker="worker-7f3a9c on pulse-host-2",
                               started_at=started, finished_at=started + timedelta(seconds=1),
                               outcome=Attempt.Outcome.FAILED, error_code="network_error",
                               error_message=failed.error_message, traceback="Traceback (most recent call last):")
    Job.objects.create(team=acme, handler="pulse.noop", status=Job.Status.COMPLETED, parent=failed)
    schedule_trigger(schedule=data["schedule"], by="alice")
    queue_resume(pause=queue_pause(scope=QueuePause.Scope.TEAM, team=acme, reason="disk full", by="alice"), by="alice")
    queue_pause(scope=QueuePause.Scope.TEAM, team=acme, reason="database migration until 14:00", by="alice")
    target = target_create(team=acme, name="Ops webhook", kind="webhook", address="https://hooks.example.com/pulse",
                           by=None)
    rule_create(team=acme, target=target, kind="job_failed", by=None)
    target_send_test(target=target, by="alice")
    budget_override_create(team=acme, amount="3.00", expires_at=timezone.now() + timedelta(days=2),
                           reason="Quarter-end reports", by=None, user=alice)
    failed.pulse_state = {"at": started.isoformat(), "spent": {"day": "0.42", "week": "0.42", "month": "0.42"},
                          "limit": {"day": "0.5", "week": "2", "month": "5"},
                          "remaining": {"day": "0.08", "week": "1.58", "month": "4.58"},
                          "calls_this_minute": 5, "calls_remaining": 5, "running": 1, "max_concurrent": 1}
    failed.save(update_fields=["pulse_state"])
    # alice is an operator too, for the system page: an operator's pause and a worker busy with a job.
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    queue_pause(scope=QueuePause.Scope.HANDLER, handler="http.request", reason="vendor outage", by="ops")
    WorkerBeat.objects.create(name="pulse-host-2:4711", cluster="pulse-host-2:4700", rss_bytes=80 * 2**20,
                              busy_job=failed.public_id)
    urls = {"job": f"/jobs/{failed.public_id}/", "schedule": f"/schedules/{data['schedule'].public_id}/"}
    login_as(alice)
    page.set_viewport_size(PHONE)
    problems = []
    for where, tables in CARD_TABLES.items():
        page.goto(urls.get(where, where))
        problems += card_problems(page, where, tables)

    # The overview's newest event and the schedule's new run, drawn live.
    page.goto("/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    page.wait_for_selector(f'#activity-rows tr[data-kind="job.created"] a[href="/jobs/{job.public_id}/"]')
    problems += card_problems(page, "/ (live)", CARD_TABLES["/"])
    page.goto(urls["schedule"])
    page.wait_for_selector("#live-indicator[data-state=live]")
    run = schedule_trigger(schedule=data["schedule"], by="alice")
    page.wait_for_selector(f'#execution-rows tr[data-execution-id="{run.public_id}"]')
    problems += card_problems(page, "schedule (live)", CARD_TABLES["schedule"])
    assert problems == [], "\n".join(problems)
