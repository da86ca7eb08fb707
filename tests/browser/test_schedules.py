"""A schedule made in the form with its live preview; its first run appears and completes live; pause."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.db import connection

from jobs.runner import run_job
from schedules.models import Execution, Schedule
from schedules.services import executions_follow, schedules_tick

pytestmark = pytest.mark.browser


def test_create_a_schedule_watch_its_first_run_complete_live_and_pause_it(page, login_as, alice, acme):
    login_as(alice)
    page.goto("/schedules/")
    page.click("text=New schedule")
    page.fill("#id_name", "Every minute")
    page.select_option("#id_handler", "pulse.noop")
    page.select_option("#id_time_zone", "Europe/Berlin")
    page.fill("#id_cron", "* * * * *")
    page.wait_for_function("document.getElementById('preview-description').textContent === 'Every minute'")
    assert page.locator("#preview-runs li").count() == 5
    page.fill("#id_cron", "0 0 30 2 *")
    page.locator("#preview-errors li").wait_for()
    assert "never fires" in page.locator("#preview-errors").inner_text()
    page.fill("#id_cron", "* * * * *")
    page.wait_for_function("document.getElementById('preview-errors').children.length === 0")
    page.click("button[type=submit].primary")
    schedule = Schedule.objects.get(name="Every minute")
    page.wait_for_url(f"/schedules/{schedule.public_id}/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    page.evaluate("window.notReloaded = true")

    # The ticker's step, as pulse_ticker would run it when the minute comes.
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=datetime.now(UTC).replace(second=0, microsecond=0))
    assert schedules_tick().fired == 1
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
