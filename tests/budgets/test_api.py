"""The budget API: policy, usage, history, changes, held jobs, overrides; money as strings."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from budgets.models import BudgetPolicy, Override, PolicyChange
from budgets.services import WINDOWS_MOVED, budget_override_create, budget_override_refusal, budget_policy_get
from jobs.models import Job
from jobs.runner import claim, run_job
from pulse_site.live.models import Event
from pulse_site.teams.services import membership_set_role

pytestmark = pytest.mark.django_db
URL = "/api/v1/budget/"


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_the_policy_starts_unlimited_with_default_thresholds(acme_api):
    body = acme_api.get(URL).json()
    assert body["daily_limit"] is None and body["calls_per_minute"] is None
    assert body["alert_thresholds"] == [80, 100] and body["effective_time_zone"] == "UTC"
    assert body["handler_caps"] == {}


def test_an_owner_updates_the_policy_and_the_change_is_recorded(alice, acme):
    response = session(alice).patch(URL, {"daily_limit": "10.50", "calls_per_minute": 5, "week_start": 6,
                                          "time_zone": "Europe/Berlin",
                                          "handler_caps": {"test.paid": {"daily": "2"}}}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["daily_limit"], body["calls_per_minute"], body["week_start"]) == ("10.5", 5, 6)
    assert body["handler_caps"] == {"test.paid": {"daily": "2", "weekly": None, "monthly": None}}
    assert body["updated_by"] == "alice"
    assert body["notes"] == [WINDOWS_MOVED]  # Berlin and Sunday: the current windows start again
    change = PolicyChange.objects.get(team=acme)
    assert change.before["daily_limit"] is None and change.after["daily_limit"] == "10.5"
    assert session(alice).get(URL + "changes/").json()[0]["by"] == "alice"


def test_a_limit_that_can_never_be_reached_is_said_in_the_answer_and_while_it_stands(alice, acme):
    """The page said it; the API kept quiet about it."""
    body = session(alice).patch(URL, {"daily_limit": "3", "weekly_limit": "2"}, format="json").json()
    said = ["The daily limit (3) is above the weekly limit (2): the weekly limit is reached first."]
    assert body["notes"] == said and session(alice).get(URL).json()["notes"] == said
    assert session(alice).patch(URL, {"daily_limit": "1"}, format="json").json()["notes"] == []


@pytest.mark.parametrize("value, reason", [
    ("-1", "The amount cannot be negative."),
    ("NaN", "The amount must be a finite number."),
    ("Infinity", "The amount must be a finite number."),
    (1.5, "Expected a decimal string (e.g. \"10.50\") or null, not a number with a decimal point or an exponent."),
    (15, "Expected a decimal string (e.g. \"10.50\") or null, not a number."),
    ("0.0000001", "At most 6 decimal places."),
    ("ten", "'ten' is not an amount."),
    ("1e3", "'1e3' is not an amount: write digits with a decimal point, e.g. 10.50."),
    ("1_000", "'1_000' is not an amount: write digits with a decimal point, e.g. 10.50."),
    ("\u0663", "'\u0663' is not an amount: write digits with a decimal point, e.g. 10.50."),
    # Plain digits, as the schema's pattern and the README say: not taken as 5, 0 or 1.
    ("+5", "'+5' is not an amount: write digits with a decimal point, e.g. 10.50."),
    (" 5", "' 5' is not an amount: write digits with a decimal point, e.g. 10.50."),
    ("5\n", "'5\n' is not an amount: write digits with a decimal point, e.g. 10.50."),
    ("-0", "The amount cannot be negative."),
    ("1.0000000", "At most 6 decimal places."),
])
def test_bad_amounts_are_refused_with_400_naming_the_field_and_nothing_changes(alice, acme, value, reason):
    response = session(alice).patch(URL, {"weekly_limit": value, "daily_limit": "1"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"weekly_limit": [reason]}
    assert budget_policy_get(team=acme).daily_limit is None
    assert not PolicyChange.objects.exists()


def test_an_override_amount_not_written_in_plain_digits_is_refused_and_none_is_made(alice, acme):
    expires = (timezone.now() + timedelta(hours=1)).isoformat()
    for amount in ("+5", " 5", "5.0000000"):
        response = session(alice).post(URL + "overrides/", {"amount": amount, "expires_at": expires, "reason": "x"},
                                       format="json")
        assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["amount"], amount
    assert not Override.objects.exists()


def test_the_schema_s_money_pattern_is_what_the_api_takes(acme_api):
    """A client validating against the served schema sends what the server takes, and only that."""
    schema = acme_api.get("/api/schema/?format=json").json()
    pattern = re.compile(schema["components"]["schemas"]["OverrideInRequest"]["properties"]["amount"]["pattern"])
    assert [v for v in ("5", "10.50", "0.000001", "1.", ".5") if not pattern.search(v)] == []
    assert [v for v in ("+5", " 5", "5 ", "-1", "1e3", "0.0000001", "") if pattern.search(v)] == []


def test_bad_counts_zones_and_thresholds_are_refused(alice, acme):
    client = session(alice)
    for body, field in [({"calls_per_minute": 0}, "calls_per_minute"), ({"max_concurrent": "x"}, "max_concurrent"),
                        ({"time_zone": "Mars/Base"}, "time_zone"), ({"week_start": 7}, "week_start"),
                        ({"alert_thresholds": [0]}, "alert_thresholds"), ({"color": "red"}, "color"),
                        ({"handler_caps": {"no.such": {"daily": "1"}}}, "handler_caps.no.such")]:
        response = client.patch(URL, body, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["fields"], body


def test_every_bad_setting_is_named_at_once_and_nothing_changes(alice, acme):
    body = {"daily_limit": "abc", "weekly_limit": "-1", "monthly_limit": 0.5, "calls_per_minute": -1,
            "max_concurrent": "x", "time_zone": "Mars/Base", "week_start": 9, "alert_thresholds": [0],
            "over_budget": "shrug",
            "handler_caps": {"test.paid": {"daily": "x", "hourly": "1"}, "no.such": {"daily": "1"}}}
    response = session(alice).patch(URL, body, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert sorted(fields) == sorted([
        "daily_limit", "weekly_limit", "monthly_limit", "calls_per_minute", "max_concurrent", "time_zone",
        "week_start", "alert_thresholds", "over_budget", "handler_caps.test.paid.hourly",
        "handler_caps.test.paid.daily", "handler_caps.no.such"])
    assert fields["handler_caps.test.paid.hourly"] == ["Not a window: daily, weekly, monthly."]
    assert fields["handler_caps.no.such"] == ["Unknown handler 'no.such'."]
    assert budget_policy_get(team=acme).daily_limit is None and not PolicyChange.objects.exists()


def test_members_viewers_and_tokens_read_but_cannot_change_the_policy(bob, vic, acme, acme_api):
    for client in (session(bob), session(vic), acme_api):
        assert client.get(URL).status_code == 200
        assert client.patch(URL, {"daily_limit": "1"}, format="json").status_code == 403
    assert budget_policy_get(team=acme).daily_limit is None


def test_usage_history_and_held_jobs(alice, acme, acme_api):
    from jobs.services import job_submit

    session(alice).patch(URL, {"daily_limit": "1.00"}, format="json")
    first = job_submit(team=acme, handler="test.paid", payload={"cost": "0.80"}, source="api").job
    run_job(first.public_id)
    running = job_submit(team=acme, handler="test.paid", payload={"cost": "0.10"}, source="api").job
    claim(running.public_id)
    held = job_submit(team=acme, handler="test.paid", payload={"cost": "0.50"}, source="api").job
    run_job(held.public_id)
    usage = acme_api.get(URL + "usage/").json()
    day = usage["windows"][0]
    assert (day["window"], day["committed"], day["reserved"], day["spent"]) == ("day", "0.8", "0.1", "0.9")
    assert (day["limit"], day["remaining"], day["percent"], day["level"]) == ("1", "0.1", 90.0, "warn")
    assert (usage["calls_this_minute"], usage["running"]) == (2, 1)
    history = acme_api.get(URL + "history/").json()
    assert len(history["days"]) == 30 and history["days"][-1]["total"] == "0.8"
    assert history["days"][-1]["handlers"] == {"test.paid": "0.8"} and history["handlers"] == ["test.paid"]
    [listed] = acme_api.get(URL + "held/").json()
    assert listed["id"] == held.public_id and listed["hold_reasons"][0]["kind"] == "budget"


def test_an_owner_creates_lists_and_ends_overrides(alice, bob, acme, acme_api):
    expires = (timezone.now() + timedelta(hours=2)).isoformat()
    response = session(alice).post(URL + "overrides/", {"amount": "5.00", "expires_at": expires,
                                                        "reason": "launch"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["amount"], body["spent"], body["remaining"], body["created_by"]) == ("5", "0", "5", "alice")
    assert [o["id"] for o in acme_api.get(URL + "overrides/").json()] == [body["id"]]
    assert session(bob).post(URL + "overrides/", {"amount": "1", "expires_at": expires, "reason": "x"},
                             format="json").status_code == 403
    assert acme_api.post(URL + "overrides/", {"amount": "1", "expires_at": expires, "reason": "x"},
                         format="json").status_code == 403
    assert session(alice).post(URL + "overrides/", {"amount": "-1", "expires_at": expires, "reason": "x"},
                               format="json").json()["error"]["fields"] == {"amount": ["The amount cannot be negative."]}
    ended = session(alice).post(URL + f"overrides/{body['id']}/end/").json()
    assert Override.objects.get(public_id=body["id"]).expires_at <= timezone.now()
    assert ended["id"] == body["id"]


@pytest.mark.parametrize("role", ["viewer", "member", "admin"])
def test_every_role_but_an_owner_is_refused_overrides_in_the_pages_words(alice, bob, acme, globex, role):
    """The page shows a viewer, a member and an admin budget_override_refusal's words where the
    form was; the API's 403 says the same (not "Only owners and admins change the budget.", which
    an admin then met as a 403 too), before the body's fields, and another team's id is a 404."""
    bob_as = membership_set_role(membership=acme.memberships.get(user=bob), role=role, by=None)
    refusal = {"code": "permission_denied", "message": budget_override_refusal(by=bob_as).message, "fields": {}}
    override = budget_override_create(team=acme, amount="2", expires_at=timezone.now() + timedelta(hours=1),
                                      reason="r", by=None, user=alice)
    theirs = budget_override_create(team=globex, amount="2", expires_at=timezone.now() + timedelta(hours=1),
                                    reason="g", by=None)
    expires = (timezone.now() + timedelta(hours=2)).isoformat()
    client = session(bob)
    answers = [client.post(URL + "overrides/", {"amount": "1", "expires_at": expires, "reason": "x"}, format="json"),
               client.post(URL + "overrides/", {"amount": "x"}, format="json"),
               client.post(URL + f"overrides/{override.public_id}/end/")]
    assert [(a.status_code, a.json()["error"]) for a in answers] == [(403, refusal)] * 3
    assert client.post(URL + f"overrides/{theirs.public_id}/end/").status_code == 404
    assert list(Override.objects.filter(team=acme)) == [override]
    assert Override.objects.get(pk=override.pk).expires_at == override.expires_at


def test_charlie_gets_404_for_acme_s_override_and_changes_nothing(alice, acme, charlie, globex):
    override = budget_override_create(team=acme, amount="2", expires_at=timezone.now() + timedelta(hours=1),
                                      reason="r", by=None, user=alice)
    client = session(charlie)
    assert client.get(URL + f"overrides/{override.public_id}/").status_code == 404
    assert client.post(URL + f"overrides/{override.public_id}/end/").status_code == 404
    override.refresh_from_db()
    assert override.expires_at > timezone.now()
    # Charlie's own budget routes show and change Globex only.
    assert client.patch(URL, {"daily_limit": "1"}, format="json").status_code == 200
    assert client.get(URL + "overrides/").json() == []
    assert client.get(URL + "held/").json() == []
    assert budget_policy_get(team=acme).daily_limit is None
    assert BudgetPolicy.objects.get(team=globex).daily_limit == 1_000_000
    assert not Job.objects.exists()


def test_the_demo_sets_acme_s_low_limits_and_putting_them_back_is_recorded_once():
    from budgets.demo import DEMO_BUDGETS
    from pulse_site.demo import demo_load
    from pulse_site.teams.models import Team

    demo_load()
    acme = Team.objects.get(slug="acme-analytics")
    policy = budget_policy_get(team=acme)
    assert (policy.daily_limit, policy.max_concurrent, policy.alert_thresholds) == (500_000, 1, [50, 80, 100])
    assert DEMO_BUDGETS["acme-analytics"]["daily_limit"] == "0.50"
    BudgetPolicy.objects.filter(team=acme).update(daily_limit=None)
    demo_load()
    demo_load()
    assert budget_policy_get(team=acme).daily_limit == 500_000
    assert PolicyChange.objects.filter(team=acme).count() == 2  # the first load and the one repair


def test_submitting_a_job_whose_estimate_is_over_a_limit_answers_422_with_the_reason(acme, acme_api):
    from budgets.services import budget_policy_update

    budget_policy_update(team=acme, changes={"daily_limit": "1.00"}, by=None)
    response = acme_api.post("/api/v1/jobs/", {"handler": "test.paid", "payload": {"cost": "1.000001"}}, format="json")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "over_budget_limit"
    assert error["message"] == ("The estimate of 1.000001 is above the team's daily limit of 1; "
                                "this job could never run.")
    assert not Job.objects.exists()
    ok = acme_api.post("/api/v1/jobs/", {"handler": "test.paid", "payload": {"cost": "1.00"}}, format="json")
    assert ok.status_code == 201 and ok.json()["would_hold"] == []


def test_the_submit_answer_says_why_a_job_would_be_held_now(acme, acme_api):
    from budgets.services import budget_policy_update

    budget_policy_update(team=acme, changes={"daily_limit": "1.00"}, by=None)
    claim(acme_api.post("/api/v1/jobs/", {"handler": "test.paid", "payload": {"cost": "0.70"}},
                        format="json").json()["id"])
    body = acme_api.post("/api/v1/jobs/", {"handler": "test.paid", "payload": {"cost": "0.40"}}, format="json").json()
    [reason] = body["would_hold"]
    assert (reason["kind"], reason["window"], reason["reserved"], reason["estimate"]) == ("budget", "day", "0.7", "0.4")


def test_a_job_over_a_limit_an_override_lets_through_is_still_told_what_else_holds_it(acme, acme_api):
    from budgets.services import budget_policy_update

    budget_policy_update(team=acme, changes={"daily_limit": "1.00", "max_concurrent": 1}, by=None)
    budget_override_create(team=acme, amount="5", expires_at=timezone.now() + timedelta(hours=1), reason="launch",
                           by=None)
    claim(acme_api.post("/api/v1/jobs/", {"handler": "test.paid", "payload": {"cost": "0.10"}},
                        format="json").json()["id"])
    response = acme_api.post("/api/v1/jobs/", {"handler": "test.paid", "payload": {"cost": "2.00"}}, format="json")
    # Over the daily limit alone, but the override covers it; the one running job still holds it back.
    assert response.status_code == 201
    assert [reason["kind"] for reason in response.json()["would_hold"]] == ["concurrency"]


def test_a_policy_update_that_is_not_an_object_is_refused(alice, acme):
    response = session(alice).patch(URL, ["daily_limit", "1"], format="json")
    assert response.status_code == 400 and response.json()["error"]["fields"] == {"body": ["Expected an object, not a list."]}
    assert not PolicyChange.objects.exists()


def test_each_window_says_when_its_limit_is_reached_at_the_last_hours_pace(alice, alice_client, acme, acme_api,
                                                                          time_machine):
    """2.00 charged in the last hour (a charge before that does not count), 3.00 spent so far:
    today's limit of 10 lasts 3.5 h more, to 13:30; the week's 20 is reached on Tuesday at 05:00,
    not at 18:30 today, since each day stops at the daily limit; the month's 1,000 lasts past its
    reset; the handler's daily cap of 5 is reached in an hour."""
    from datetime import UTC, datetime

    from budgets.models import Ledger, Usage
    from budgets.windows import windows_at

    now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # a Monday
    time_machine.move_to(now, tick=False)
    session(alice).patch(URL, {"daily_limit": "10", "weekly_limit": "20", "monthly_limit": "1000",
                               "handler_caps": {"test.paid": {"daily": "5"}}}, format="json")
    for window in windows_at(now, zone=UTC, week_start=0):
        for scope in ("", "test.paid"):
            Usage.objects.create(team=acme, scope=scope, kind=window.kind, window_start=window.start,
                                 window_end=window.end, committed=3_000_000)
    for number, minutes_ago in enumerate([90, 30, 10]):
        for scope in ("", "test.paid"):
            for kind in ("day", "week", "month"):  # a charge is written once per window kind
                Ledger.objects.create(team=acme, job_id=f"JB_{number}", handler="test.paid", attempt=1,
                                      kind=Ledger.Kind.CHARGE, scope=scope, window_kind=kind, amount=1_000_000,
                                      at=now - timedelta(minutes=minutes_ago))
    usage = acme_api.get(URL + "usage/").json()
    day, week, month = usage["windows"]
    assert (day["pace_per_hour"], day["remaining"], day["limit_reached_at"]) == ("2", "7", "2026-06-01T13:30:00+00:00")
    assert week["limit_reached_at"] == "2026-06-02T05:00:00+00:00"
    assert (month["pace_per_hour"], month["limit_reached_at"]) == ("2", None)
    assert usage["handler_caps"]["test.paid"][0]["limit_reached_at"] == "2026-06-01T11:00:00+00:00"
    html = alice_client.get("/budget/").content.decode()
    assert "At the last hour's pace (2 an hour) the limit is reached" in html
    assert 'datetime="2026-06-01T13:30:00+00:00"' in html and 'datetime="2026-06-02T05:00:00+00:00"' in html
    assert "At the last hour's pace (2 an hour) it lasts until the reset." in html


def test_a_busy_teams_pace_is_read_from_its_newest_charges_not_its_whole_hour(alice, acme, acme_api, time_machine,
                                                                             monkeypatch):
    """Every job writes charges: the page reads at most PACE_SAMPLE of them, and paces from the span
    they cover (here the newest two, 2.00 in the last 10 minutes: 12 an hour, not the hour's 4)."""
    from datetime import UTC, datetime

    from budgets import selectors
    from budgets.models import Ledger

    now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    time_machine.move_to(now, tick=False)
    session(alice).patch(URL, {"daily_limit": "100"}, format="json")
    for number, minutes_ago in enumerate([50, 20, 10, 5]):
        Ledger.objects.create(team=acme, job_id=f"JB_{number}", handler="test.paid", attempt=1,
                              kind=Ledger.Kind.CHARGE, scope="", window_kind="day", amount=1_000_000,
                              at=now - timedelta(minutes=minutes_ago))
    assert acme_api.get(URL + "usage/").json()["windows"][0]["pace_per_hour"] == "4"
    monkeypatch.setattr(selectors, "PACE_SAMPLE", 2)
    assert acme_api.get(URL + "usage/").json()["windows"][0]["pace_per_hour"] == "12"


def test_a_limit_near_the_largest_amount_is_projected_without_overflow(alice, alice_client, acme, acme_api,
                                                                       time_machine):
    """A daily limit of 1,000,000,000 with half of it charged in the last half hour: the limit is
    reached in an hour, at 11:00. The projection multiplied an hour by the micro-units left before
    dividing by the pace, past what a timedelta holds: the budget page, the overview and the usage
    API answered 500 for any team whose spend was that large."""
    from datetime import UTC, datetime

    from budgets.models import Ledger, Usage
    from budgets.windows import windows_at

    now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    time_machine.move_to(now, tick=False)
    session(alice).patch(URL, {"daily_limit": "1000000000"}, format="json")
    day = windows_at(now, zone=UTC, week_start=0)[0]
    Usage.objects.create(team=acme, scope="", kind=day.kind, window_start=day.start, window_end=day.end,
                         committed=500_000_000_000_000)
    Ledger.objects.create(team=acme, job_id="JB_1", handler="test.paid", attempt=1, kind=Ledger.Kind.CHARGE,
                          window_kind="day", amount=500_000_000_000_000, at=now - timedelta(minutes=30))

    usage = acme_api.get(URL + "usage/").json()
    assert (usage["windows"][0]["remaining"], usage["windows"][0]["limit_reached_at"]) == (
        "500000000", "2026-06-01T11:00:00+00:00")
    assert alice_client.get("/budget/").status_code == 200
    assert alice_client.get("/").status_code == 200


def test_ending_an_override_that_has_ended_is_a_409_as_the_page_offers_no_end(alice, acme, alice_client):
    override = budget_override_create(team=acme, amount="2", expires_at=timezone.now() + timedelta(hours=1),
                                      reason="r", by=None, user=alice)
    assert session(alice).post(URL + f"overrides/{override.public_id}/end/").status_code == 200
    ended_at = Override.objects.get(pk=override.pk).expires_at

    response = session(alice).post(URL + f"overrides/{override.public_id}/end/")
    assert response.status_code == 409
    assert response.json()["error"] == {"code": "override_ended", "message": "This override has already ended.",
                                        "fields": {}}
    assert Override.objects.get(pk=override.pk).expires_at == ended_at
    assert Event.objects.filter(kind="budget.override_ended").count() == 1
    assert f'action="/budget/overrides/{override.public_id}/end/"' not in alice_client.get("/budget/").content.decode()
