"""A delivery is Pulse's own work, not the team's: it costs nothing, and the team's budget (its
money limits, its rate, its running slots) neither holds it back nor counts it. A budget alert, an
overrun or a job held by the budget is told while the budget holds everything else, and a slow
receiver never takes a running slot from the team's jobs."""

from __future__ import annotations

import pytest
from django.core import mail

from budgets.models import BudgetPolicy, Ledger, Start
from budgets.services import budget_policy_update
from jobs.models import Job
from jobs.pausing import queue_pause, queue_resume
from jobs.runner import claim, run_job
from jobs.services import job_submit
from pulse_site.notifications.models import Rule
from pulse_site.notifications.services import notifications_match, rule_create, target_create, target_send_test

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


@pytest.fixture
def ops(acme):
    return target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)


def running_job(team) -> Job:
    job = job_submit(team=team, handler="pulse.noop", payload={}, source="api").job
    assert claim(job.public_id) is not None
    return Job.objects.get(pk=job.pk)


def test_a_delivery_goes_out_while_the_teams_only_running_slot_is_taken_and_takes_none(acme, ops):
    budget_policy_update(team=acme, changes={"max_concurrent": 1}, by=None)
    busy = running_job(acme)
    delivery = target_send_test(target=ops, by="alice")
    run_job(delivery.public_id)

    delivered = Job.objects.get(pk=delivery.pk)
    assert (delivered.status, delivered.hold_reasons) == (Status.COMPLETED, [])
    assert [m.subject for m in mail.outbox] == ["Pulse test notification for ops"]
    # Only the team's own job is counted: its slot and its start.
    assert BudgetPolicy.objects.get(team=acme).running == 1
    assert Start.objects.filter(team=acme).count() == 1
    assert not Ledger.objects.filter(job_id=delivery.public_id).exists()
    assert Job.objects.get(pk=busy.pk).status == Status.RUNNING


def test_deliveries_are_not_held_by_the_rate_nor_counted_in_it(acme, ops):
    budget_policy_update(team=acme, changes={"calls_per_minute": 1}, by=None)
    run_job(job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job.public_id)
    deliveries = [target_send_test(target=ops, by="alice") for _ in range(3)]
    for delivery in deliveries:
        run_job(delivery.public_id)

    assert [Job.objects.get(pk=d.pk).status for d in deliveries] == [Status.COMPLETED] * 3
    assert len(mail.outbox) == 3
    assert Start.objects.filter(team=acme).count() == 1


def test_the_budget_alert_of_an_overspent_limit_is_delivered_under_the_fail_policy(acme, ops, temp_handler):
    @temp_handler("test.paid", cost="0.50", max_attempts=1)
    def paid(ctx):
        ctx.report_cost("1.20")  # more than the estimate: past the limit, which holds even a free job

    budget_policy_update(team=acme, changes={"daily_limit": "1.00", "alert_thresholds": [100],
                                              "over_budget": "fail"}, by=None)
    rule_create(team=acme, target=ops, kind=Rule.Kind.BUDGET_THRESHOLD, by=None)
    notifications_match()
    run_job(job_submit(team=acme, handler="test.paid", payload={}, source="api").job.public_id)
    assert notifications_match() == 1
    delivery = Job.objects.get(handler="pulse.notify")
    run_job(delivery.public_id)

    delivered = Job.objects.get(pk=delivery.pk)
    assert (delivered.status, delivered.error_code) == (Status.COMPLETED, "")
    assert [(m.subject, m.body) for m in mail.outbox] == [
        ("Budget alert", "The team has spent 1.2 of its daily limit of 1 (100 % reached).")]


def test_a_delivery_chained_after_a_teams_job_does_not_inherit_its_slot(acme, ops, settings):
    # The submit's dispatch hands over one job: the delivery waits in the backlog, and the worker
    # that settles the team's job goes straight on to it (jobs.runner.settle_and_take_next).
    settings.PULSE_DISPATCH_CAPACITY = 1
    settings.PULSE_CHAIN_SECONDS = 30
    budget_policy_update(team=acme, changes={"max_concurrent": 1}, by=None)
    first = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    delivery = target_send_test(target=ops, by="alice")
    run_job(first.public_id)

    assert [Job.objects.get(pk=j.pk).status for j in (first, delivery)] == [Status.COMPLETED] * 2
    assert BudgetPolicy.objects.get(team=acme).running == 0
    assert Start.objects.filter(team=acme).count() == 1


def test_a_delivery_held_by_a_queue_pause_is_released_on_resume_while_the_slot_is_taken(acme, ops):
    budget_policy_update(team=acme, changes={"max_concurrent": 1}, by=None)
    busy = running_job(acme)  # the team's one slot, taken before the pause (running jobs finish)
    pause = queue_pause(scope="team", team=acme, reason="maintenance", by="alice")
    delivery = target_send_test(target=ops, by="alice")
    run_job(delivery.public_id)
    assert [r["kind"] for r in Job.objects.get(pk=delivery.pk).hold_reasons] == ["queue_paused"]
    queue_resume(pause=pause, by="alice")

    released = Job.objects.get(pk=delivery.pk)
    assert (released.status, released.hold_reasons) == (Status.QUEUED, [])
    run_job(delivery.public_id)
    assert Job.objects.get(pk=delivery.pk).status == Status.COMPLETED
    assert (BudgetPolicy.objects.get(team=acme).running, Job.objects.get(pk=busy.pk).status) == (1, Status.RUNNING)
