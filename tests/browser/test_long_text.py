"""A big customer's data shapes in Chromium: names at their longest, long unbroken strings (a URL,
a token), right-to-left text, emoji and HTML-looking text. Every page still fits the screen, at
phone width and on a desktop, and shows such text literally."""

from __future__ import annotations

import pytest

from jobs.models import Job, TaskLog
from jobs.services import job_submit
from pulse_site.notifications.services import target_create
from pulse_site.teams.services import token_create
from schedules.services import schedule_create

pytestmark = pytest.mark.browser

HANDLER = "bigco.reconciliation." + "x" * 79  # 100 characters, the longest name a job can carry
URL = "https://example.com/" + "p" * 280
TOKEN = "t" * 200
MARKUP = '<b>x</b> "><script>window.__pwned = 1</script>'


@pytest.fixture
def bigco(acme, temp_handler):
    """Acme as a big customer names things: its name, a handler's, a schedule's, a token's and a
    webhook's at their longest, a job with a long URL and token in its payload, a long unbroken
    progress message, error and log line."""
    acme.name = "BigCo " + "W" * 94
    acme.save(update_fields=["name"])
    temp_handler(HANDLER, title="Nightly reconciliation of every regional warehouse — مرحلة — שלב 🚀 " + MARKUP,
                 description="Reads " + URL + " " + MARKUP,
                 schema={"type": "object", "properties": {"url": {"type": "string", "description": "Where to read from. " * 20},
                                                              "token": {"type": "string"}}})(
        lambda ctx: None)
    job = job_submit(team=acme, handler=HANDLER, payload={"url": URL, "token": TOKEN}, source="api").job
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, progress_current=1, progress_total=3,
                                         progress_message="m" * 500)
    failed = job_submit(team=acme, handler=HANDLER, payload={"url": URL, "token": TOKEN}, source="api").job
    Job.objects.filter(pk=failed.pk).update(status=Job.Status.FAILED, error_code="network_error",
                                            error_message="E" * 600 + " " + MARKUP, result={"url": URL})
    TaskLog.objects.create(job=job, stage="s" * 100, task="k" * 100, message="L" * 2_000)
    TaskLog.objects.create(job=job, stage="s" * 100, task="k" * 100, message=MARKUP + " " + URL)
    schedule = schedule_create(team=acme, name="n" * 100, handler=HANDLER, cron="*/5 * * * *",
                               payload={"url": URL, "token": TOKEN}, description="d" * 500)
    token_create(team=acme, name="k" * 100, access="read", expires_at=None, by=None)
    target_create(team=acme, name="w" * 100, kind="webhook", address="https://hooks.example.com/" + "h" * 300,
                  by=None)
    return {"job": job, "failed": failed, "schedule": schedule}


def test_no_page_is_wider_than_the_screen_with_the_longest_names_and_unbroken_strings(page, login_as, alice, bigco):
    login_as(alice)
    job, failed, schedule = bigco["job"], bigco["failed"], bigco["schedule"]
    urls = ["/", "/jobs/", f"/jobs/{job.public_id}/", f"/jobs/{failed.public_id}/", "/handlers/",
            f"/handlers/{HANDLER}/", "/schedules/", f"/schedules/{schedule.public_id}/",
            f"/schedules/{schedule.public_id}/edit/", f"/jobs/new/?handler={HANDLER}", "/team/",
            "/notifications/", "/budget/"]
    wide = []
    for width in (320, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        for url in urls:
            page.goto(url)
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            if scroll_width > width:
                wide.append(f"{url} is {scroll_width} px wide at {width} px")
    assert wide == []
    assert page.evaluate("window.__pwned") is None


def test_a_long_description_in_a_table_does_not_split_the_words_of_its_headers(page, login_as, alice, bigco):
    """Text wraps anywhere outside tables only: a column beside a long one kept its header whole."""
    login_as(alice)
    page.goto(f"/handlers/{HANDLER}/")
    lines = page.evaluate("""() => [...document.querySelectorAll('#payload-fields th')].map((th) => {
      const range = document.createRange();
      range.selectNodeContents(th);
      return [th.textContent, new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size];
    })""")
    assert lines == [["Field", 1], ["Type", 1], ["Required", 1], ["Default", 1], ["Rules", 1], ["What it is", 1]]
