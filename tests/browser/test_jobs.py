"""The jobs pages follow a running job live: a submitted job's progress and logs, and a cancel."""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connection
from playwright.sync_api import expect

import jobs.runner
from jobs.models import Job
from jobs.services import job_submit
from tests.browser.conftest import assert_redrawn_unannounced

pytestmark = pytest.mark.browser


def run_in_background(job_id: str) -> threading.Thread:
    """The real worker code path, in a thread, because the browser tests' server runs no worker."""
    thread = threading.Thread(target=lambda: (jobs.runner.run_job(job_id), connection.close()), daemon=True)
    thread.start()
    return thread


@pytest.fixture
def fast_jobs(settings):
    settings.PULSE_PROGRESS_INTERVAL = 0
    settings.PULSE_CANCEL_POLL_SECONDS = 0.05


def test_a_job_submitted_from_the_form_moves_to_completion_without_a_reload(page, login_as, alice, acme, fast_jobs):
    login_as(alice)
    page.goto("/jobs/new/")
    page.select_option("#id_handler_choice", "pulse.sleep")
    page.click("text=Choose")
    page.fill('[name="payload.steps"]', "4")
    page.fill('[name="payload.seconds"]', "0.3")
    page.click("#submit-job")
    page.wait_for_url(re.compile(r"/jobs/JB_\w+/$"))
    page.wait_for_selector("#live-indicator[data-state=live]")
    job = Job.objects.get(team=acme)
    expect(page.locator("#status-badge")).to_have_text("Queued")
    page.evaluate("window.__sameDocument = true")

    thread = run_in_background(job.public_id)
    expect(page.locator("#status-badge")).to_have_text("Completed", timeout=15_000)
    thread.join(timeout=10)
    expect(page.locator("#job-progress-text")).to_have_text("4/4")
    lines = page.locator('#log-groups [data-stage="sleep"] .log-line .message')
    expect(lines).to_have_count(4)
    expect(lines.last).to_have_text("Step 4 of 4 done")
    assert page.locator('[data-stage="sleep"] [data-task="step-2"]').count() == 1
    assert page.evaluate("window.__sameDocument") is True

    page.goto("/jobs/")
    row = page.locator(f'tr[data-job-id="{job.public_id}"]')
    expect(row.locator('[data-field="status"]')).to_have_text("Completed")
    page.screenshot(path="/tmp/shots/jobs_list.png", full_page=True)


def test_a_new_job_appears_on_the_list_and_its_row_follows_it(page, login_as, alice, acme, fast_jobs):
    login_as(alice)
    page.goto("/jobs/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    job = job_submit(team=acme, handler="pulse.sleep", payload={"steps": 3, "seconds": 0.2}, source="api").job
    row = page.locator(f'tr[data-job-id="{job.public_id}"]')
    expect(row.locator('[data-field="status"]')).to_have_text("Queued")
    run_in_background(job.public_id)
    expect(row.locator('[data-field="status"]')).to_have_text("Completed", timeout=15_000)
    expect(row.locator('[data-field="progress-text"]')).to_have_text("3/3")


def test_a_filtered_list_takes_in_only_the_new_jobs_its_filter_matches(page, login_as, alice, acme):
    login_as(alice)
    page.goto("/jobs/?q=pulse.noop+user%3D42")
    page.wait_for_selector("#live-indicator[data-state=live]")
    with page.expect_response(lambda r: "/row/" in r.url) as other_answer:
        other = job_submit(team=acme, handler="pulse.noop", payload={"user": 7}, source="api").job
    assert other.public_id in other_answer.value.url and other_answer.value.status == 204
    with page.expect_response(lambda r: "/row/" in r.url) as wanted_answer:
        wanted = job_submit(team=acme, handler="pulse.noop", payload={"user": 42}, source="api").job
    assert wanted.public_id in wanted_answer.value.url and wanted_answer.value.status == 200
    expect(page.locator(f'tr[data-job-id="{wanted.public_id}"]')).to_have_count(1)
    assert page.locator(f'tr[data-job-id="{other.public_id}"]').count() == 0


def test_cancelling_a_running_job_from_its_page_ends_it_cancelled(page, login_as, alice, acme, fast_jobs):
    job = job_submit(team=acme, handler="pulse.sleep", payload={"steps": 200, "seconds": 0.1}, source="api").job
    login_as(alice)
    page.goto(f"/jobs/{job.public_id}/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    thread = run_in_background(job.public_id)
    expect(page.locator("#status-badge")).to_have_text("Running")
    expect(page.locator("#job-progress-text")).to_have_text(re.compile(r"^[1-9]\d*/200$"))
    page.click("#action-cancel")
    expect(page.locator("#status-badge")).to_have_text("Cancelled", timeout=15_000)
    thread.join(timeout=10)
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED
    expect(page.locator("#action-retry")).to_be_visible()
    page.screenshot(path="/tmp/shots/job_detail.png", full_page=True)


def test_the_new_job_form_says_what_the_job_would_cost_and_do_as_you_type(page, login_as, alice, acme, temp_handler):
    from decimal import Decimal

    from budgets.services import budget_policy_update

    @temp_handler("test.rows", cost=lambda payload: Decimal("0.01") * payload["rows"],
                  schema={"type": "object", "properties": {"rows": {"type": "integer", "minimum": 1}},
                          "required": ["rows"]})
    def run(ctx):
        return "ok"

    budget_policy_update(team=acme, changes={"daily_limit": "1.00"}, by=None)
    login_as(alice)
    page.goto("/jobs/new/?handler=test.rows")
    preview = page.locator("#submit-preview p")
    page.fill('[name="payload.rows"]', "10")
    expect(preview).to_have_text(re.compile(r"^Estimated cost 0\.1\. Nothing would hold it now"))
    page.fill('[name="payload.rows"]', "150")
    expect(preview).to_have_text(re.compile(r"It would be refused: The estimate of 1\.5 is above the team's daily limit"))
    page.fill('[name="payload.rows"]', "0")
    expect(preview).to_have_text("To see what it would cost, fix rows (0 is less than the minimum of 1).")
    assert not Job.objects.exists()


def test_a_backlogged_jobs_page_follows_its_place_until_it_is_handed_over(page, login_as, alice, acme, settings):
    """Its page is sent only its own events; the others starting move it up all the same."""
    from jobs.dispatch import dispatch

    settings.PULSE_DISPATCH_CAPACITY = 0  # nothing is handed over until the test says so
    jobs = [job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job for _ in range(3)]
    login_as(alice)
    page.goto(f"/jobs/{jobs[2].public_id}/")
    waiting = page.locator("#job-waiting")
    expect(waiting).to_contain_text("In the backlog: 2 of the team's jobs go first")
    settings.PULSE_DISPATCH_CAPACITY = 2
    dispatch()  # the two before it go to the workers
    expect(waiting).to_contain_text("Next in the team's backlog", timeout=15_000)
    settings.PULSE_DISPATCH_CAPACITY = 3
    dispatch()
    expect(waiting).to_contain_text("Handed to the workers", timeout=15_000)


def test_pulses_own_lines_arrive_live_and_a_retry_s_lines_are_its_own(page, login_as, alice, acme):
    """"Attempt 1 of 3 started …" and "Failed after …" are written with the job's change, not
    sent one by one: the page reads them back; the retry's lines go under "Job · attempt 2"."""
    job = job_submit(team=acme, handler="pulse.fail", payload={"code": "network_error", "message": "boom",
                                                               "retryable": False}, source="api").job
    login_as(alice)
    page.goto(f"/jobs/{job.public_id}/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    page.evaluate("window.__sameDocument = true")

    run_in_background(job.public_id).join(timeout=10)
    expect(page.locator("#status-badge")).to_have_text("Failed")
    first = page.locator('#log-groups [data-stage=""][data-attempt="1"] .log-line .message')
    expect(first.first).to_have_text(re.compile(r"^Attempt 1 of \d+ started"))
    expect(first.last).to_have_text(re.compile(r"^Failed after \d+ ms with network_error: boom"))

    assert page.evaluate("window.__sameDocument") is True
    page.click("#action-retry")  # a form: the page is loaded again
    expect(page.locator("#status-badge")).to_have_text("Queued")
    page.wait_for_selector("#live-indicator[data-state=live]")
    page.evaluate("window.__sameDocument = true")
    run_in_background(job.public_id).join(timeout=10)
    expect(page.locator("#status-badge")).to_have_text("Failed")
    retry = page.locator('#log-groups [data-stage=""][data-attempt="2"]')
    expect(retry.locator("h3")).to_have_text("Job · attempt 2")
    expect(retry.locator(".log-line .message").last).to_have_text(re.compile(r"^Failed after \d+ ms"))
    expect(first).to_have_count(2)  # the first attempt's lines stay as they were
    expect(page.locator("#job-last-attempt")).to_contain_text("; attempt 2 started ")
    assert page.evaluate("window.__sameDocument") is True

    page.reload()  # the server groups them alike
    expect(page.locator('#log-groups [data-stage=""][data-attempt="2"] h3')).to_have_text("Job · attempt 2")


def test_a_live_redraw_keeps_keyboard_focus_on_its_button_and_announces_the_new_status(page, login_as, alice, acme):
    """A keyboard user resting on Cancel of a waiting job (its block redrawn every few seconds) stays
    on it; a screen reader hears the status change once, politely, not the redraws."""
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source=Job.Source.API).job
    login_as(alice)
    page.goto(f"/jobs/{job.public_id}/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    expect(page.locator("#job-waiting")).to_be_visible()
    page.focus("#action-cancel")
    page.evaluate("window.__block = document.getElementById('job-status')")
    page.wait_for_function("document.getElementById('job-status') !== window.__block", timeout=15_000)
    assert page.evaluate("document.activeElement.id") == "action-cancel"
    assert page.locator("#job-announce").text_content() == ""  # a redraw that changed nothing says nothing

    from jobs.services import job_cancel
    job_cancel(job=job, by="bob")
    expect(page.locator("#status-badge")).to_have_text("Cancelled")
    expect(page.locator("#job-announce")).to_have_text("Status: Cancelled")
    assert page.get_attribute("#job-announce", "role") == "status"


def test_a_live_row_redraw_keeps_keyboard_focus_on_the_rows_checkbox(page, login_as, alice, acme):
    """Selecting jobs with Tab and Space on a list whose rows change: the redrawn row keeps the focus."""
    from jobs.services import job_cancel

    job = job_submit(team=acme, handler="pulse.noop", payload={}, source=Job.Source.API).job
    login_as(alice)
    page.goto("/jobs/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    page.focus(f"#pick-{job.public_id}")
    page.keyboard.press("Space")
    job_cancel(job=job, by="bob")
    row = page.locator(f'tr[data-job-id="{job.public_id}"]')
    expect(row.locator('[data-field="status"]')).to_have_text("Cancelled")
    assert page.evaluate("document.activeElement.id") == f"pick-{job.public_id}"
    assert page.is_checked(f"#pick-{job.public_id}")


def test_the_overviews_live_figures_keep_keyboard_focus_when_redrawn(page, login_as, alice, acme):
    login_as(alice)
    page.wait_for_selector("#live-indicator[data-state=live]")
    link = page.locator("#overview-pulse a[href]").first
    href = link.get_attribute("href")
    link.focus()
    page.evaluate("window.__block = document.getElementById('overview-pulse')")
    job_submit(team=acme, handler="pulse.noop", payload={}, source=Job.Source.API)
    page.wait_for_function("document.getElementById('overview-pulse') !== window.__block", timeout=15_000)
    assert page.evaluate("document.activeElement.getAttribute('href')") == href
    assert page.evaluate("document.getElementById('overview-pulse').contains(document.activeElement)")


def test_the_new_job_preview_is_announced_when_its_verdict_changes_not_on_every_keystroke(page, login_as, alice, acme):
    login_as(alice)
    page.goto("/jobs/new/?handler=pulse.sleep")
    announced = page.locator("#submit-preview-announce")
    expect(announced).to_contain_text("Nothing would hold it now")
    assert page.get_attribute("#submit-preview", "aria-live") in (None, "off")
    assert page.get_attribute("#submit-preview-announce", "role") == "status"

    # A keystroke that changes nothing the preview says: it is redrawn, and nothing is read out.
    assert_redrawn_unannounced(page, "submit-preview-announce", "#submit-preview > *",
                               lambda: page.fill('[name="payload.seconds"]', "2"))

    # One that changes it is read out once.
    page.fill('[name="payload.steps"]', "0")
    expect(announced).not_to_have_text("")
    assert "Nothing would hold it now" not in announced.text_content()


def test_load_more_by_keyboard_leaves_focus_on_the_first_row_it_brought_when_it_is_the_last_page(
        page, login_as, alice, acme):
    for n in range(55):
        Job.objects.create(team=acme, handler="pulse.noop", status=Job.Status.COMPLETED, payload={"n": n})
    first_of_page_two = Job.objects.filter(team=acme).order_by("-pk")[50]
    login_as(alice)
    page.goto("/jobs/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    page.focus("#load-more")
    page.keyboard.press("Enter")
    expect(page.locator("#job-rows tr")).to_have_count(55)
    expect(page.locator("#load-more")).to_have_count(0)
    focused_row = page.evaluate("document.activeElement.closest('tr') && document.activeElement.closest('tr').dataset.jobId")
    assert focused_row == first_of_page_two.public_id


def test_apply_to_all_matching_from_the_keyboard_keeps_focus_on_its_button_through_the_batches(
        page, login_as, alice, acme):
    for n in range(3):
        Job.objects.create(team=acme, handler="pulse.noop", status=Job.Status.QUEUED, payload={"n": n})
    login_as(alice)
    page.goto("/jobs/?status=queued")
    page.on("dialog", lambda dialog: dialog.accept())
    page.select_option("#bulk-matching-action", "cancel")
    page.focus("#bulk-matching-confirm")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "bulk-matching-submit"
    page.keyboard.press("Enter")
    page.wait_for_selector("#bulk-matching[data-finished=yes]")
    expect(page.locator("#bulk-status")).to_contain_text("Finished: 3 done")
    assert page.evaluate("document.activeElement.id") == "bulk-matching-submit"


def test_every_progress_bar_is_named_for_its_job(page, login_as, alice, acme):
    job = Job.objects.create(team=acme, handler="pulse.sleep", status=Job.Status.RUNNING, progress_current=1,
                             progress_total=3, progress_message="step 1 of 3")
    login_as(alice)
    page.goto("/jobs/")
    expect(page.locator(f'tr[data-job-id="{job.public_id}"] progress')).to_have_accessible_name(
        f"Progress of {job.public_id}")
    page.goto(f"/jobs/{job.public_id}/")
    expect(page.locator("#job-progress")).to_have_accessible_name("Progress")


def test_on_a_phone_the_jobs_filters_sit_two_to_a_row_so_the_list_starts_on_the_first_screen(page, login_as, alice,
                                                                                             acme):
    page.set_viewport_size({"width": 390, "height": 844})
    login_as(alice)
    page.goto("/jobs/")
    tops = {name: page.locator(f"form.filters [name={name}]").bounding_box()
            for name in ("status", "handler", "source", "error_code", "period", "schedule")}
    # Two selects to a row (they were one to a row, the filters 600 px tall), each whole on screen.
    assert tops["status"]["y"] == tops["handler"]["y"]
    assert tops["source"]["y"] == tops["error_code"]["y"]
    assert tops["period"]["y"] == tops["schedule"]["y"]
    assert all(box["x"] + box["width"] <= 390 for box in tops.values())
    assert page.locator("form.filters").bounding_box()["height"] <= 600
    expect(page.locator("#jobs h2")).to_be_in_viewport()


def test_on_a_phone_each_job_row_shows_its_status_and_figures_within_the_screen(page, login_as, alice, acme):
    job = job_submit(team=acme, handler="pulse.fail", payload={"code": "network_error", "message": "reset"},
                     source="api").job
    page.set_viewport_size({"width": 390, "height": 844})
    login_as(alice)
    page.goto("/jobs/")
    row = page.locator(f'#job-rows tr[data-job-id="{job.public_id}"]')
    expect(row).to_be_visible()
    # The status was the fourth of eight columns, past the screen's edge in a table scrolled sideways.
    # Measured in one go: the row may be redrawn live (its job.created relayed after the page was
    # drawn), and a part measured while it was swapped had no box.
    parts = ['[data-field="status"]', "input[type=checkbox]", "[data-field=cost]", "[data-field=attempts]",
             "[data-field=created]"]
    boxes = page.evaluate("""([id, parts]) => {
      const row = document.querySelector(`#job-rows tr[data-job-id="${id}"]`);
      return parts.map((part) => {
        const box = row.querySelector(part).getBoundingClientRect();
        return box.width && box.height ? {x: box.x, width: box.width} : null;
      });
    }""", [job.public_id, parts])
    for part, box in zip(parts, boxes, strict=True):
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, part
    expect(row.locator("[data-field=attempts]")).to_have_text("0/3")
    label, height = page.evaluate("""(id) => {
      const row = document.querySelector(`#job-rows tr[data-job-id="${id}"]`);
      return [getComputedStyle(row.querySelector("[data-field=attempts]"), "::before").content,
              row.getBoundingClientRect().height];
    }""", job.public_id)
    assert label == '"Attempts"' and height <= 160
