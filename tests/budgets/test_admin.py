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


def test_the_end_action_leaves_overrides_that_have_ended_saying_how_many_and_ends_the_others(admin_client, acme):
    from budgets.services import budget_override_create, budget_override_end

    ended = budget_override_create(team=acme, amount="5", expires_at=timezone.now() + timedelta(hours=2),
                                   reason="incident", by=None)
    ended = budget_override_end(override=ended, by=None)
    ending = budget_override_create(team=acme, amount="1", expires_at=timezone.now() + timedelta(hours=2),
                                    reason="other", by=None)

    response = admin_client.post("/admin/budgets/override/", {"action": "end_selected",
                                                              "_selected_action": [ended.pk, ending.pk]}, follow=True)

    page = response.content.decode()
    assert "Ended: 1 override." in page
    assert "Left as they were: 1 of the selected overrides (they had already ended)." in page
    assert Override.objects.get(pk=ended.pk).expires_at == ended.expires_at
    assert Event.objects.filter(kind="budget.override_ended").count() == 2


def _windows_of(team, start) -> None:
    from budgets.models import Alert, Ledger, Usage

    end = start + timedelta(days=1)
    Usage.objects.create(team=team, kind="day", window_start=start, window_end=end, committed=2_500_000)
    Ledger.objects.create(team=team, job_id="JB_1", attempt=1, kind="charge", window_kind="day", window_start=start,
                          window_end=end, amount=2_500_000, at=start + timedelta(minutes=30))
    Alert.objects.create(team=team, window_kind="day", window_start=start, window_end=end, threshold=80,
                         spent=2_500_000, limit=3_000_000, at=start + timedelta(minutes=30))


@pytest.mark.parametrize(("policy_zone", "shown"), [("", "Asia/Tokyo"), ("America/New_York", "America/New_York")],
                         ids=["the-teams-zone", "the-budgets-own-zone"])
def test_budget_windows_and_entries_are_shown_in_the_budgets_zone_naming_it(admin_client, acme, policy_zone, shown):
    """They read in UTC, unnamed: a Tokyo team's day, from midnight there, was "Dec. 6, 2026, 3 p.m."."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from budgets.models import Alert, Ledger, Usage
    from pulse_site.teams.models import Team

    Team.objects.filter(pk=acme.pk).update(time_zone="Asia/Tokyo")
    budget_policy_update(team=acme, changes={"time_zone": policy_zone or None}, by=None)
    midnight = datetime(2026, 12, 7, tzinfo=ZoneInfo(shown)).astimezone(UTC)
    _windows_of(acme, midnight)

    pages = {url: admin_client.get(url).content.decode() for url in
             ("/admin/budgets/usage/", "/admin/budgets/ledger/", "/admin/budgets/alert/")}

    assert f"2026-12-07 00:00 {shown}" in pages["/admin/budgets/usage/"]
    assert f"2026-12-08 00:00 {shown}" in pages["/admin/budgets/usage/"]
    for url in ("/admin/budgets/ledger/", "/admin/budgets/alert/"):
        assert f"2026-12-07 00:00 {shown}" in pages[url], url  # the window
        assert f"2026-12-07 00:30 {shown}" in pages[url], url  # when
    assert ">2.5<" in pages["/admin/budgets/ledger/"]
    for model in (Ledger, Usage, Alert):  # a row's own page, too
        url = f"/admin/budgets/{model._meta.model_name}/{model.objects.get().pk}/change/"
        page = admin_client.get(url).content.decode()
        assert f"2026-12-08 00:00 {shown}" in page and ">2.5<" in page, url
        assert "the team&#x27;s zone" not in page, url  # no other zone said beside the budget's


def test_an_overrides_page_shows_its_money_as_people_read_it(admin_client, acme):
    """It gave the table's micro-units: 25000000 for an override of 25."""
    from budgets.services import budget_override_create

    override = budget_override_create(team=acme, amount="25", expires_at=timezone.now() + timedelta(hours=1),
                                      reason="incident", by=None)
    Override.objects.filter(pk=override.pk).update(spent=1_250_000)

    page = admin_client.get(f"/admin/budgets/override/{override.pk}/change/").content.decode()

    assert ">25<" in page and ">1.25<" in page
    assert "25000000" not in page and "1250000" not in page


def test_select_all_of_a_long_history_ends_the_overrides_in_force(admin_client, acme):
    """The ended ones are not counted against the action's cap: a year of expired overrides does
    not stop the operator ending the one in force."""
    from budgets.services import budget_override_create
    from pulse_site.admin_actions import ACTION_MAX

    past = timezone.now() - timedelta(days=1)
    Override.objects.bulk_create(Override(team=acme, amount=1, expires_at=past, reason=f"old {n}")
                                 for n in range(ACTION_MAX + 5))
    live = budget_override_create(team=acme, amount="1", expires_at=timezone.now() + timedelta(hours=2),
                                  reason="now", by=None)

    response = admin_client.post("/admin/budgets/override/", {
        "action": "end_selected", "select_across": "1",
        "_selected_action": list(Override.objects.values_list("pk", flat=True))}, follow=True)

    page = response.content.decode()
    assert "Ended: 1 override." in page
    assert f"Left as they were: {ACTION_MAX + 5} of the selected overrides (they had already ended)." in page
    assert Override.objects.get(pk=live.pk).expires_at <= timezone.now()
