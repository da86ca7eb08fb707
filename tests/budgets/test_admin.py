"""The budget admin: a refused setting is a form error on its field, never a 500, and changes
nothing; overrides are made and ended through the budget services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from budgets.models import BudgetPolicy, Override, PolicyChange
from budgets.services import budget_policy_get, budget_policy_update
from pulse_site.live.models import Event

POLICY = {"daily_amount": "", "weekly_amount": "", "monthly_amount": "", "calls_per_minute": "", "max_concurrent": "",
          "time_zone": "", "week_start": "0", "alert_thresholds": "[50, 80, 100]"}


def _when(delta: timedelta) -> dict[str, str]:
    at = (timezone.now() + delta).strftime("%Y-%m-%d %H:%M:%S")
    return {"expires_at_0": at[:10], "expires_at_1": at[11:]}


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("time_zone", "Mars/Base", "An IANA time zone name (e.g. Europe/Berlin), or empty for the team&#x27;s."),
    ("alert_thresholds", "[500]", "Each threshold is a whole percentage from 1 to 100."),
    ("alert_thresholds", '"often"', "Each threshold is a whole percentage from 1 to 100."),
    ("week_start", "9", "0 (Monday) to 6 (Sunday)."),
], ids=["zone", "threshold", "thresholds-not-a-list", "week-start"])
def test_a_refused_policy_setting_is_an_error_on_its_field_and_changes_nothing(admin_client, acme, field, value, reason):
    budget_policy_update(team=acme, changes={"daily_limit": "5.00"}, by=None)
    policy = budget_policy_get(team=acme)
    changes_before = PolicyChange.objects.count()

    response = admin_client.post(f"/admin/budgets/budgetpolicy/{policy.pk}/change/",
                                 {**POLICY, "daily_amount": "1.00", field: value})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field] == [reason.replace("&#x27;", "'")]
    saved = BudgetPolicy.objects.get(pk=policy.pk)
    assert (saved.daily_limit, PolicyChange.objects.count()) == (5_000_000, changes_before)


@pytest.mark.parametrize(("values", "field", "reason"), [
    ({"amount_text": "0", **_when(timedelta(hours=1))}, "amount_text", "The override amount must be above 0."),
    ({"amount_text": "5", **_when(timedelta(days=40))}, "expires_at", "At most 30 days ahead."),
    ({"amount_text": "5", **_when(timedelta(hours=1)), "reason": "   "}, "reason", "This field is required."),
], ids=["zero", "too-far", "blank-reason"])
def test_a_refused_override_is_an_error_on_its_field_and_makes_nothing(admin_client, acme, values, field, reason):
    response = admin_client.post("/admin/budgets/override/add/", {"team": acme.pk, "reason": "incident", **values})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field] == [reason]
    assert (Override.objects.count(), Event.objects.filter(kind="budget.override").count()) == (0, 0)


def test_an_operator_ends_an_override_with_the_end_action_through_the_service(admin_client, acme):
    from budgets.services import budget_override_create

    ending = budget_override_create(team=acme, amount="5", expires_at=timezone.now() + timedelta(hours=2),
                                    reason="incident", by=None)
    kept = budget_override_create(team=acme, amount="1", expires_at=timezone.now() + timedelta(hours=2),
                                  reason="other", by=None)

    response = admin_client.post("/admin/budgets/override/", {"action": "end_selected",
                                                              "_selected_action": [ending.pk]}, follow=True)

    ending.refresh_from_db()
    kept.refresh_from_db()
    assert "Ended: 1 override." in response.content.decode()
    assert ending.expires_at <= timezone.now() < kept.expires_at
    ended = Event.objects.get(kind="budget.override_ended")
    assert (ended.subject, ended.payload["by"]) == (ending.public_id, "admin admin")
