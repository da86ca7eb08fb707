"""The overview's activity list follows the team's events live, and only that team's."""

from __future__ import annotations

import pytest

from pulse_site.live.models import Event
from pulse_site.live.services import event_emit
from pulse_site.selectors import payload_summary

pytestmark = pytest.mark.browser


def test_an_event_emitted_after_the_page_loaded_appears_without_a_reload(page, login_as, alice, acme, globex):
    login_as(alice)
    page.wait_for_selector("#live-indicator[data-state=live]")
    rows_before = page.locator("#activity-rows tr").count()

    theirs = event_emit(team=globex, kind="test.globex", subject="G1", payload={"secret": "yes"})
    ours = event_emit(team=acme, kind="test.live", subject="JB_1", payload={"step": 2, "note": "half way"})

    row = page.locator(f'#activity-rows tr[data-event-id="{ours.id}"]')
    row.wait_for()
    # The stored payload's key order is the database's (jsonb sorts keys); the page must match
    # what the server renders for the same row.
    stored = Event.objects.get(pk=ours.id).payload
    assert payload_summary(stored) in ("step: 2, note: half way", "note: half way, step: 2")
    assert [row.locator("td").nth(n).inner_text() for n in (1, 2, 3)] == ["test.live", "JB_1", payload_summary(stored)]
    assert page.locator("#activity-rows tr").first.get_attribute("data-event-id") == str(ours.id)
    assert page.locator("#activity-rows tr").count() == rows_before + 1
    assert page.locator(f'tr[data-event-id="{theirs.id}"]').count() == 0
    assert "test.globex" not in page.content()
