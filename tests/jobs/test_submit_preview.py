"""The new-job form's preview as you type: what the job would cost and whether it would start now,
be held (why, until when) or be refused, or which fields to fix, with nothing written."""

from __future__ import annotations

import html
from datetime import UTC, datetime

import pytest

from budgets.services import budget_policy_update
from jobs.models import Job, QueuePause
from jobs.pausing import queue_pause
from jobs.runner import claim
from jobs.services import job_submit

pytestmark = pytest.mark.django_db
URL = "/jobs/new/preview/"


@pytest.fixture
def paid(temp_handler):
    @temp_handler("test.paid", cost="0.60")
    def run(ctx):
        return "ok"


def preview(client, **fields) -> str:
    response = client.get(URL, {"handler": "test.paid", "payload": "{}", "priority": "0", **fields})
    assert response.status_code == 200
    return " ".join(html.unescape(response.content.decode()).split())


def test_a_job_nothing_holds_says_its_cost_and_that_it_starts(alice_client, acme, paid):
    assert ('data-verdict="starts">Estimated cost <strong>0.6</strong>. Nothing would hold it now: it starts as soon '
            "as a worker is free.") in preview(alice_client)
    assert not Job.objects.exists()


def test_a_job_over_the_daily_limit_says_it_would_be_held_why_and_until_when(alice_client, acme, paid):
    budget_policy_update(team=acme, changes={"daily_limit": "1.00"}, by=None)
    claim(job_submit(team=acme, handler="test.paid", payload={}, source="api").job.public_id)
    body = preview(alice_client)
    assert 'data-verdict="held">Estimated cost <strong>0.6</strong>. It would be held now:' in body
    assert "<li>0.6 spent or reserved + 0.6 estimate is over the team's daily limit of 1. (resumes <time" in body
    assert Job.objects.count() == 1


def test_a_paused_queue_is_a_reason_too(alice_client, acme, paid):
    queue_pause(scope=QueuePause.Scope.TEAM, team=acme, reason="deploying", by="alice")
    assert 'data-verdict="held"' in preview(alice_client) and "deploying" in preview(alice_client)


def test_a_job_that_could_never_run_says_it_would_be_refused(alice_client, acme, paid):
    budget_policy_update(team=acme, changes={"daily_limit": "0.50"}, by=None)
    assert ('data-verdict="refused">It would be refused: The estimate of 0.6 is above the team\'s daily limit of '
            "0.5; this job could never run.") in preview(alice_client)


def test_fields_to_fix_are_named_before_any_cost(alice_client):
    def fix(**fields) -> str:
        return " ".join(alice_client.get(URL, {"handler": "pulse.sleep", "payload.seconds": "1", **fields})
                        .content.decode().split())

    assert ('data-verdict="fields">To see what it would cost, fix <strong>Priority</strong> (Ensure this value is '
            "less than or equal to 100.).") in fix(priority="500", **{"payload.steps": "2"})
    # The payload's schema is the submit's to check: its errors are named the same way.
    assert ('data-verdict="fields">To see what it would cost, fix <strong>steps</strong> (0 is less than the '
            "minimum of 1).") in fix(priority="0", **{"payload.steps": "0"})
    assert "It would be refused: Choose one of the listed handlers." in alice_client.get(URL, {"handler": "no.such"}).content.decode()


def test_a_later_start_says_when_and_that_the_limits_are_checked_then(alice_client, acme, paid, time_machine):
    time_machine.move_to(datetime(2026, 6, 1, 10, 0, tzinfo=UTC), tick=False)
    budget_policy_update(team=acme, changes={"max_concurrent": 1}, by=None)
    claim(job_submit(team=acme, handler="test.paid", payload={}, source="api").job.public_id)
    body = preview(alice_client, start_at="2026-06-01T12:00")
    assert 'data-verdict="later">Estimated cost <strong>0.6</strong>. It starts <time' in body
    assert "in 2 hours</time>; the limits are checked then." in body  # (the running job would hold it now)


def test_a_viewer_cannot_ask(vic_client):
    assert vic_client.get(URL, {"handler": "pulse.noop"}).status_code == 403


# --- the API's ----------------------------------------------------------------------------------


def test_the_api_preview_answers_the_estimate_and_the_reasons_and_writes_nothing(acme, acme_api, paid):
    budget_policy_update(team=acme, changes={"daily_limit": "1.00", "max_concurrent": 1}, by=None)
    claim(job_submit(team=acme, handler="test.paid", payload={}, source="api").job.public_id)
    response = acme_api.post("/api/v1/jobs/preview/", {"handler": "test.paid", "payload": {}}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["estimate"], body["run_after"]) == ("0.6", None)
    assert [reason["kind"] for reason in body["would_hold"]] == ["concurrency", "budget"]
    later = acme_api.post("/api/v1/jobs/preview/", {"handler": "test.paid", "delay_seconds": 60}, format="json").json()
    assert later["run_after"] is not None
    assert Job.objects.count() == 1


def test_the_api_preview_refuses_as_the_submit_would(acme, acme_api, acme_api_read, paid):
    budget_policy_update(team=acme, changes={"daily_limit": "0.50"}, by=None)
    refused = acme_api.post("/api/v1/jobs/preview/", {"handler": "test.paid", "payload": {}}, format="json")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "over_budget_limit"
    both = acme_api.post("/api/v1/jobs/preview/", {"handler": "test.paid", "run_after": "2030-01-01T00:00:00Z",
                                                   "delay_seconds": 5}, format="json")
    assert both.status_code == 400 and list(both.json()["error"]["fields"]) == ["delay_seconds"]
    unknown = acme_api.post("/api/v1/jobs/preview/", {"handler": "test.paid", "notify": "NT_x"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["error"]["fields"] == {"notify": ["Unknown field."]}
    assert acme_api_read.post("/api/v1/jobs/preview/", {"handler": "test.paid"}, format="json").status_code == 403
    assert not Job.objects.exists()


def test_the_submits_own_answer_names_a_pause_too(acme, acme_api, paid):
    queue_pause(scope=QueuePause.Scope.TEAM, team=acme, reason="deploying", by="alice")
    body = acme_api.post("/api/v1/jobs/", {"handler": "test.paid", "payload": {}}, format="json").json()
    assert body["status"] == "queued"
    assert [(reason["kind"], "deploying" in reason["message"]) for reason in body["would_hold"]] == [("queue_paused", True)]
