"""Over budget: hold (default, the job waits) or fail (admission ends it with budget_exceeded)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from budgets.models import BudgetPolicy, PolicyChange
from budgets.services import budget_override_create, budget_policy_update
from jobs.models import Job
from jobs.runner import claim, run_job
from jobs.services import job_submit

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status
URL = "/api/v1/budget/"


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def paid(temp_handler):
    @temp_handler("test.paid", cost="0.60")
    def run(ctx):
        return "ok"


def two_runs(acme) -> tuple[Job, Job]:
    first = job_submit(team=acme, handler="test.paid", payload={}, source="api").job
    run_job(first.public_id)
    second = job_submit(team=acme, handler="test.paid", payload={}, source="api").job
    run_job(second.public_id)
    first.refresh_from_db()
    second.refresh_from_db()
    return first, second


def test_by_default_a_job_over_budget_is_held(acme, paid):
    budget_policy_update(team=acme, changes={"daily_limit": "1.00"}, by=None)
    first, second = two_runs(acme)
    assert first.status == Status.COMPLETED
    assert second.status == Status.PAUSED and second.hold_reasons[0]["kind"] == "budget"


def test_with_fail_a_job_over_budget_fails_at_once_with_budget_exceeded(acme, paid):
    budget_policy_update(team=acme, changes={"daily_limit": "1.00", "over_budget": "fail"}, by=None)
    first, second = two_runs(acme)
    assert first.status == Status.COMPLETED
    assert second.status == Status.FAILED
    assert second.error_code == "budget_exceeded"
    assert second.error_message == "0.6 spent or reserved + 0.6 estimate is over the team's daily limit of 1."
    assert (second.error_retryable, second.error_recoverable, second.attempts) == (False, True, 0)
    assert second.error_details["reasons"][0]["window"] == "day"
    assert BudgetPolicy.objects.get(team=acme).running == 0  # nothing reserved or counted for it


def test_with_fail_a_rate_limit_still_holds(acme, temp_handler):
    @temp_handler("test.free")
    def run(ctx):
        return "ok"

    budget_policy_update(team=acme, changes={"calls_per_minute": 1, "over_budget": "fail"}, by=None)
    jobs = [job_submit(team=acme, handler="test.free", payload={}, source="api").job for _ in range(2)]
    for job in jobs:
        run_job(job.public_id)
        job.refresh_from_db()
    assert [j.status for j in jobs] == [Status.COMPLETED, Status.PAUSED]
    assert jobs[1].hold_reasons[0]["kind"] == "rate"


def test_with_fail_a_job_an_override_covers_waits_for_a_slot_instead_of_failing(acme, temp_handler):
    @temp_handler("test.dear", cost="2.00")
    def run(ctx):
        return "ok"

    budget_policy_update(team=acme, changes={"daily_limit": "1.00", "max_concurrent": 1, "over_budget": "fail"},
                         by=None)
    budget_override_create(team=acme, amount="5", expires_at=timezone.now() + timedelta(hours=1), reason="launch",
                           by=None)
    first = job_submit(team=acme, handler="test.dear", payload={}, source="api").job
    second = job_submit(team=acme, handler="test.dear", payload={}, source="api").job
    assert claim(first.public_id) is not None  # running: the one slot is taken
    run_job(second.public_id)
    second.refresh_from_db()
    # Over the daily limit, which the override lifts; held by the slot alone, not failed for money.
    assert second.status == Status.PAUSED
    assert [r["kind"] for r in second.hold_reasons] == ["concurrency"] and second.resume_at is None


def test_an_owner_sets_fail_through_the_api_and_the_change_is_recorded(alice, acme):
    response = session(alice).patch(URL, {"over_budget": "fail"}, format="json")
    assert response.status_code == 200 and response.json()["over_budget"] == "fail"
    change = PolicyChange.objects.get(team=acme)
    assert (change.before["over_budget"], change.after["over_budget"]) == ("hold", "fail")


def test_an_unknown_over_budget_value_is_refused_and_nothing_changes(alice, acme):
    response = session(alice).patch(URL, {"over_budget": "drop"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["over_budget"]
    assert session(alice).get(URL).json()["over_budget"] == "hold"


def test_the_budget_page_sets_over_budget(alice_client, acme):
    assert 'id="id_over_budget"' in alice_client.get("/budget/").content.decode()
    alice_client.post("/budget/settings/", {"over_budget": "fail"})
    assert BudgetPolicy.objects.get(team=acme).over_budget == "fail"


def test_charlie_cannot_change_acmes_over_budget(charlie, acme, globex):
    session(charlie).patch(URL, {"over_budget": "fail"}, format="json")
    assert BudgetPolicy.objects.filter(team=acme, over_budget="fail").count() == 0
