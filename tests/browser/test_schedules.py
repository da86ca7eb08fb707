"""A schedule made in the form with its live preview; its first run appears and completes live; pause."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from playwright.sync_api import expect

from jobs.runner import run_job
from schedules.models import Execution, Schedule
from schedules.services import executions_follow, schedule_create, schedules_tick
from tests.browser.conftest import assert_redrawn_unannounced

pytestmark = pytest.mark.browser


def test_create_a_schedule_watch_its_first_run_complete_live_and_pause_it(page, login_as, alice, acme):
    login_as(alice)
    page.goto("/schedules/")
    page.click("text=New schedule")
    page.select_option("#id_handler_choice", "pulse.noop")
    page.click("text=Choose")
    page.fill("#id_name", "Every minute")
    page.select_option("#id_time_zone", "Europe/Berlin")
    page.fill("#id_cron", "* * * * *")
    page.wait_for_function("document.getElementById('preview-description').textContent === 'Every minute'")
    assert page.locator("#preview-runs li").count() == 5
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.fill("#id_cron", "0 0 30 2 *")
    page.locator("#preview-errors li").wait_for()
    assert "never fires" in page.locator("#preview-errors").inner_text()
    assert console_errors == []  # half-typed input is no failed request
    page.fill("#id_cron", "* * * * *")
    page.wait_for_function("document.getElementById('preview-errors').children.length === 0")
    # What it would cost, redone as the estimate is typed.
    page.fill("#id_estimate_override", "0.01")
    expect(page.locator("#preview-cost")).to_have_text(
        "Next 30 days: about 43,200 runs × 0.01 = 432 (14.4 a day on average)")
    page.fill("#id_estimate_override", "")
    page.click("button[type=submit].primary")
    schedule = Schedule.objects.get(name="Every minute")
    page.wait_for_url(f"/schedules/{schedule.public_id}/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    page.evaluate("window.notReloaded = true")

    # The ticker's step, as pulse_ticker would run it when the minute comes.
    slot = datetime.now(UTC).replace(second=0, microsecond=0)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=slot)
    assert schedules_tick(now=slot).fired == 1  # at the slot: a minute turning meanwhile would add the next
    execution = Execution.objects.get(schedule=schedule)
    row = page.locator(f'#execution-rows tr[data-execution-id="{execution.public_id}"]')
    row.wait_for()
    assert row.get_attribute("data-status") == "queued"

    # No worker in the browser test server: run the job in a thread as a worker would.
    def work() -> None:
        try:
            run_job(execution.job.public_id)
            executions_follow()
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=30)
    page.wait_for_selector(f'#execution-rows tr[data-execution-id="{execution.public_id}"][data-status="completed"]')
    assert "ms" in row.locator('[data-field="duration"]').inner_text()
    assert page.evaluate("window.notReloaded") is True

    page.click("#toggle")
    page.wait_for_selector("#schedule-enabled:text('Paused')")
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_run_at) == (False, None)


def test_a_run_staged_ahead_moves_from_next_run_to_last_run_live_when_it_starts(page, login_as, alice, acme,
                                                                                 settings, time_machine):
    settings.PULSE_SCHEDULE_STAGE_SECONDS = 60
    schedule = schedule_create(team=acme, name="Staged", handler="pulse.noop", cron="* * * * *", time_zone="UTC")
    # Ahead by most of the staging lead, so that both pages load before it however loaded the
    # machine (3 s, then 10 s, were guesses: the slot passed first and the page rightly showed the
    # one after it); the clock is moved to it afterwards instead of waiting.
    slot = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=50)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=slot)
    assert schedules_tick().staged == 1
    execution = Execution.objects.get(schedule=schedule)
    login_as(alice)
    page.goto("/schedules/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    row = page.locator(f'tr[data-schedule-id="{schedule.public_id}"]')
    assert row.locator('[data-field="next"] time').get_attribute("datetime") == slot.isoformat()
    assert "never" in row.locator('[data-field="last"]').inner_text()
    detail = page.context.new_page()
    detail.goto(f"/schedules/{schedule.public_id}/")
    detail.wait_for_selector("#live-indicator[data-state=live]")
    first_next_run = detail.locator("#next-runs li time").first
    assert first_next_run.get_attribute("datetime") == slot.isoformat()

    time_machine.move_to(slot, tick=True)  # a staged job waits for its slot (the web server's clock too)
    run_job(execution.job.public_id)
    row.locator('[data-field="last"] .status-completed').wait_for()
    following = row.locator('[data-field="next"] time').get_attribute("datetime")
    assert datetime.fromisoformat(following) > slot
    # The schedule's page: the run leaves the next runs as its row shows it completed.
    detail.wait_for_function(f"document.querySelector('#next-runs li time').getAttribute('datetime') === '{following}'")


def test_load_more_appends_the_next_pages_of_schedules_and_of_jobs_in_place(page, login_as, alice, acme, monkeypatch):
    import jobs.views
    import schedules.selectors
    from jobs.models import Job

    import schedules.views
    from schedules.models import Execution

    monkeypatch.setattr(schedules.selectors, "SCHEDULES_PAGE", 2)
    monkeypatch.setattr(jobs.views, "PAGE_SIZE", 2)
    monkeypatch.setattr(schedules.views, "HISTORY", 2)
    made = [schedule_create(team=acme, name=f"Report {name}", handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
            for name in ("A", "B", "C", "D", "E")]
    Job.objects.bulk_create(Job(team=acme, handler="pulse.noop", payload={"n": n}) for n in range(5))
    for day in range(1, 6):
        Execution.objects.create(schedule=made[0], team=acme, fire_time=f"2026-06-0{day}T03:00:00Z", outcome="skipped",
                                 reason="busy")
    login_as(alice)
    for path, rows in (("/schedules/", "#schedule-rows > tr"), ("/jobs/", "#job-rows > tr"),
                       (f"/schedules/{made[0].public_id}/", "#execution-rows > tr")):
        page.goto(path)
        page.evaluate("window.notReloaded = true")
        expect(page.locator(rows)).to_have_count(2)
        page.click("#load-more")
        expect(page.locator(rows)).to_have_count(4)
        page.click("#load-more")
        expect(page.locator(rows)).to_have_count(5)
        expect(page.locator("#load-more")).to_have_count(0)
        assert page.evaluate("window.notReloaded") is True  # appended, not a new page


def test_the_cron_preview_reads_out_a_new_description_or_error_once_not_every_redraw(page, login_as, alice, acme):
    login_as(alice)
    page.goto("/schedules/new/?handler=pulse.noop")
    assert page.get_attribute("#cron-preview", "aria-live") in (None, "off")
    announced = page.locator("#cron-preview-announce")
    page.fill("#id_cron", "0 9 * * *")
    expect(announced).to_contain_text("09:00")
    assert page.get_attribute("#cron-preview-announce", "role") == "status"

    # The estimate changes the projection, not what the cron means: redrawn, nothing read out.
    assert_redrawn_unannounced(page, "cron-preview-announce", "#preview-runs li",
                               lambda: page.fill("#id_estimate_override", "0.10"))

    page.fill("#id_cron", "61 9 * * *")
    expect(announced).to_contain_text("cron")


def test_a_schedule_is_made_and_edited_through_its_handlers_fields(page, login_as, alice, acme, temp_handler):
    """The payload was a JSON box with "{}" in it: the handler's fields had to be read elsewhere."""
    from decimal import Decimal

    temp_handler("test.rows", title="Count rows", cost=lambda payload: Decimal("0.01") * payload["rows"],
                 schema={"type": "object", "required": ["rows"],
                         "properties": {"rows": {"type": "integer", "minimum": 1, "description": "Rows to count."},
                                        "label": {"type": "string", "default": "all rows"}}})(lambda ctx: None)
    login_as(alice)
    page.goto("/schedules/")
    page.click("text=New schedule")
    page.select_option("#id_handler_choice", "test.rows")
    page.click("text=Choose")
    page.fill("#id_name", "Row count")
    rows, label = page.locator('[name="payload.rows"]'), page.locator('[name="payload.label"]')
    expect(label).to_have_value("")
    expect(page.locator('[id="id_payload.label_helptext"]')).to_have_text(
        "Empty: each run gets the handler's default, \"all rows\"")
    page.fill("#id_cron", "0 * * * *")
    # The projection is costed from the fields as they are typed.
    rows.fill("10")
    expect(page.locator("#preview-cost")).to_have_text("Next 30 days: about 720 runs × 0.1 = 72 (2.4 a day on average)")
    rows.fill("0")
    expect(page.locator("#preview-cost")).to_contain_text("no estimate")
    page.click("#schedule-form button[type=submit].primary")
    expect(page.locator('[id="id_payload.rows_error"]')).to_have_text("0 is less than the minimum of 1")
    expect(rows).to_have_attribute("aria-invalid", "true")
    assert not Schedule.objects.exists()
    rows.fill("20")
    page.click("#schedule-form button[type=submit].primary")
    schedule = Schedule.objects.get(name="Row count")
    page.wait_for_url(f"/schedules/{schedule.public_id}/")
    assert (schedule.handler, schedule.payload) == ("test.rows", {"rows": 20})

    page.click("text=Edit")
    expect(rows).to_have_value("20")
    expect(label).to_have_value("")  # as written: the default is each run's, not stored
    expect(page.locator("#preview-cost")).to_contain_text("× 0.2 =")
    label.fill("weekly")
    page.click("#schedule-form button[type=submit].primary")
    page.wait_for_url(f"/schedules/{schedule.public_id}/")
    schedule.refresh_from_db()
    assert schedule.payload == {"rows": 20, "label": "weekly"}


def test_load_more_follows_the_redrawn_first_page_when_new_runs_push_rows_off_it(page, login_as, alice, acme,
                                                                               monkeypatch):
    """The link was made when the page was drawn: runs pushed off the first page by new ones were
    on no page, and a history that fitted one page never got a link at all."""
    from schedules import views
    from schedules.services import schedule_trigger

    monkeypatch.setattr(views, "HISTORY", 2)
    schedule = schedule_create(team=acme, name="Often", handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
    first, second = schedule_trigger(schedule=schedule), schedule_trigger(schedule=schedule)
    login_as(alice)
    page.goto(f"/schedules/{schedule.public_id}/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    assert page.locator("#execution-rows > tr").count() == 2
    assert page.locator("#load-more").count() == 0

    third = schedule_trigger(schedule=schedule)
    page.wait_for_selector(f'#execution-rows tr[data-execution-id="{third.public_id}"]')
    page.locator("#load-more").click()

    page.wait_for_selector(f'#execution-rows tr[data-execution-id="{first.public_id}"]')
    shown = page.locator("#execution-rows > tr").evaluate_all("(rows) => rows.map((r) => r.dataset.executionId)")
    assert shown == [third.public_id, second.public_id, first.public_id]
    assert page.locator("#load-more").count() == 0


def test_on_a_phone_each_schedule_is_a_card_with_its_switch_and_run_now_on_the_screen(page, login_as, alice, acme):
    """Eight columns past a 375 px screen put the On/Off switch and Run now out of reach in a box
    scrolled sideways: on a phone each schedule is a card, each cell under its column's name."""
    schedule = schedule_create(team=acme, name="Nightly export of every report", handler="pulse.noop",
                               cron="0 3 * * *", time_zone="Europe/Berlin")
    login_as(alice)
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto("/schedules/")
    row = page.locator(f'#schedule-rows tr[data-schedule-id="{schedule.public_id}"]')
    assert page.evaluate("(w => w.scrollWidth <= w.clientWidth)(document.querySelector('#schedules .table-wrap'))")
    for control in (row.locator('[data-field="toggle"]'), row.get_by_role("button", name="Run now")):
        box = control.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375
    enabled = row.locator('td[data-label="Enabled"]')
    assert page.evaluate("(td) => getComputedStyle(td, '::before').content", enabled.element_handle()) == '"Enabled"'
    row.locator('[data-field="toggle"]').click()
    expect(page.locator(f'#schedule-rows tr[data-schedule-id="{schedule.public_id}"] [data-field="toggle"]')
           ).to_have_attribute("aria-pressed", "false")
    schedule.refresh_from_db()
    assert not schedule.enabled


def test_a_paused_schedules_next_runs_are_numbered_from_one_under_the_note_that_it_is_paused(
        page, login_as, alice, acme):
    """The note "Paused: …" heads the list of what resuming would bring; it is no run, so it
    takes no number and the first run is the first, as a screen reader reads the markers too."""
    schedule = schedule_create(team=acme, name="Weekday mornings", handler="pulse.noop",
                               cron="30 9 * * 1-5", time_zone="America/New_York", enabled=False)
    login_as(alice)
    page.goto(f"/schedules/{schedule.public_id}/")
    expect(page.locator("#next-runs-paused")).to_contain_text("Paused: nothing runs until it is resumed.")
    cdp = page.context.new_cdp_session(page)
    markers = [node["name"]["value"] for node in cdp.send("Accessibility.getFullAXTree")["nodes"]
               if node.get("role", {}).get("value") == "ListMarker"
               and node.get("name", {}).get("value", "").rstrip(". ").isdigit()]
    assert markers == ["1. ", "2. ", "3. ", "4. ", "5. "]
