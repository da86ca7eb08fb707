"""The queue pause banner (issue 9): shown on every page while the team's queue is paused, with
who and why, and put up and taken down live from the event stream, without a reload."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from playwright.sync_api import expect

import jobs.runner
from jobs.models import Job, QueuePause
from jobs.pausing import queue_pause, queue_resume
from jobs.services import job_submit
from pulse_site.teams.models import Membership

pytestmark = pytest.mark.browser


def run_in_background(job_id: str) -> threading.Thread:
    """The real worker code path, in a thread, because the browser tests' server runs no worker."""
    thread = threading.Thread(target=lambda: (jobs.runner.run_job(job_id), connection.close()), daemon=True)
    thread.start()
    return thread


def test_pausing_the_team_queue_shows_the_banner_holds_a_job_and_resuming_runs_it(page, login_as, alice, acme):
    login_as(alice)
    page.goto("/queue/")
    page.fill("#pause-reason", "database migration until 14:00")
    page.click("text=Pause the team's queue")
    expect(page.locator(".messages")).to_contain_text("The team's queue is paused")
    banner = page.locator("#queue-banner")
    expect(banner).to_contain_text("The team's queue paused by alice: database migration until 14:00")

    page.goto("/jobs/")
    expect(banner).to_be_visible()  # on every page
    page.wait_for_selector("#live-indicator[data-state=live]")
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    run_in_background(job.public_id).join(timeout=10)
    row = page.locator(f'tr[data-job-id="{job.public_id}"]')
    expect(row.locator('[data-field="status"]')).to_have_text("Held")
    expect(row.locator('[data-field="hold"]')).to_contain_text("paused")

    page.goto("/queue/")
    expect(page.locator("#queue-state")).to_contain_text("1 job waits")
    page.click("text=Resume the team's queue")
    expect(page.locator(".messages")).to_contain_text("running again")
    expect(page.locator("#queue-banner")).to_have_count(0)
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED

    page.goto("/jobs/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    run_in_background(job.public_id)
    expect(row.locator('[data-field="status"]')).to_have_text("Completed", timeout=15_000)


@pytest.mark.parametrize("url", ["/jobs/", "/team/"])
def test_the_banner_comes_and_goes_live_when_another_admin_pauses_and_resumes(page, login_as, alice, acme, url):
    """/jobs/ has a live script of its own; /team/ has none, and follows the stream only for the banner."""
    owner = Membership.objects.get(team=acme, user=alice)
    login_as(alice)
    page.goto(url)
    page.wait_for_selector("body[data-live=live]")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#queue-banner")).to_have_count(0)

    pause = queue_pause(scope=QueuePause.Scope.TEAM, team=acme, reason="disk full", by="alice", member=owner)
    expect(page.locator("#queue-banner")).to_contain_text("The team's queue paused by alice: disk full")
    queue_resume(pause=pause, by="alice", member=owner)
    expect(page.locator("#queue-banner")).to_have_count(0)
    assert page.evaluate("window.__sameDocument") is True
