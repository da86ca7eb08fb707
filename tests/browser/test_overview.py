"""The overview's recent events follow the team's events live, read as the server renders them,
and only that team's."""

from __future__ import annotations

import pytest

from jobs.services import job_submit
from pulse_site.activity import activity_text
from pulse_site.live.models import Event
from pulse_site.live.services import event_emit

pytestmark = pytest.mark.browser


def test_an_event_emitted_after_the_page_loaded_appears_without_a_reload(page, login_as, alice, acme, globex):
    login_as(alice)
    page.wait_for_selector("#live-indicator[data-state=live]")
    rows_before = page.locator("#activity-rows tr").count()

    theirs = event_emit(team=globex, kind="test.globex", subject="G1", payload={"secret": "yes"})
    progress = event_emit(team=acme, kind="job.progress", subject="JB_1", payload={"current": 1, "total": 2})
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    created = Event.objects.get(team=acme, kind="job.created", subject=job.public_id)
    ours = event_emit(team=acme, kind="test.live", subject="X1", payload={"step": 2, "note": "half way"})

    row = page.locator(f'#activity-rows tr[data-event-id="{ours.id}"]')
    row.wait_for()
    # The stored payload's key order is the database's (jsonb sorts keys): the row is the server's.
    stored = Event.objects.get(pk=ours.id).payload
    assert [row.locator("td").nth(n).inner_text() for n in (1, 2, 3)] == ["test.live", "X1", activity_text("test.live", stored)]
    job_row = page.locator(f'#activity-rows tr[data-event-id="{created.id}"]')
    assert job_row.locator("td").nth(3).inner_text() == "pulse.noop queued"
    assert job_row.locator("td a").get_attribute("href") == f"/jobs/{job.public_id}/"
    assert page.locator("#activity-rows tr").first.get_attribute("data-event-id") == str(ours.id)
    assert page.locator("#activity-rows tr").count() == rows_before + 2
    # Progress lines are left out until asked for; another team's events never come.
    assert page.locator(f'tr[data-event-id="{progress.id}"]').count() == 0
    assert page.locator(f'tr[data-event-id="{theirs.id}"]').count() == 0
    assert "test.globex" not in page.content()

    page.click("#activity-toggle")
    page.wait_for_selector("#live-indicator[data-state=live]")
    assert page.locator(f'tr[data-event-id="{progress.id}"] td').nth(3).inner_text() == "1/2"
    later = event_emit(team=acme, kind="job.log", subject="JB_1", payload={"stage": "fetch", "level": "info",
                                                                           "message": "got 3 rows"})
    page.locator(f'tr[data-event-id="{later.id}"]').wait_for()
    assert page.locator(f'tr[data-event-id="{later.id}"] td').nth(3).inner_text() == "[fetch] info: got 3 rows"
