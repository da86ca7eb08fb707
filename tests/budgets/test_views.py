"""The budget page: usage bars, held jobs, settings for managers, overrides for owners, the
alert banner; charlie never sees or changes Acme's budget."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from budgets.models import Alert, Override, PolicyChange
from budgets.services import (
    budget_override_create,
    budget_override_end,
    budget_override_refusal,
    budget_policy_get,
    budget_policy_update,
)
from jobs.runner import claim, run_job
from jobs.services import job_submit
from pulse_site.errors import PermissionDenied
from pulse_site.teams.models import Membership
from pulse_site.teams.services import membership_set_role
from tests.conftest import logged_in

pytestmark = pytest.mark.django_db
Role = Membership.Role


def paid(team, cost):
    return job_submit(team=team, handler="test.paid", payload={"cost": cost}, source="api").job


def test_the_page_shows_windows_calls_running_and_held_jobs_with_reasons(alice_client, acme):
    budget_policy_update(team=acme, changes={"daily_limit": "1.00", "max_concurrent": 4, "calls_per_minute": 9},
                         by=None)
    run_job(paid(acme, "0.80").public_id)
    held = paid(acme, "0.50")
    run_job(held.public_id)
    html = alice_client.get("/budget/").content.decode()
    assert "0.8 of 1 (80.0 %)" in html and "level-warn" in html
    assert "committed 0.8 · reserved 0" in html and "resets in" in html
    assert "1 of 9" in html  # calls this minute
    assert held.public_id in html and "over the team&#x27;s daily limit of 1." in html
    assert 'data-live-url="/budget/live/"' in html
    assert 'href="/budget/" aria-current="page">Budget</a>' in html


def test_a_limit_that_can_never_be_reached_first_is_said_when_saved(alice_client, acme):
    form = {"daily_limit": "3", "weekly_limit": "2", "monthly_limit": "2.5", "alert_thresholds": "80, 100"}
    page = alice_client.post("/budget/settings/", form, follow=True)
    said = [str(m) for m in page.context["messages"]]
    assert said == ["Budget settings saved.",
                    "The daily limit (3) is above the weekly limit (2): the weekly limit is reached first.",
                    "The daily limit (3) is above the monthly limit (2.5): the monthly limit is reached first."]
    assert budget_policy_get(team=acme).daily_limit == 3_000_000  # allowed: a team may mean it for a while
    page = alice_client.post("/budget/settings/", {**form, "daily_limit": "1"}, follow=True)
    assert [str(m) for m in page.context["messages"]] == ["Budget settings saved."]


def test_moving_the_windows_says_that_they_start_again(alice_client, acme):
    form = {"daily_limit": "3", "alert_thresholds": "80, 100", "time_zone": "", "week_start": "0"}
    said = [str(m) for m in alice_client.post("/budget/settings/", form, follow=True).context["messages"]]
    assert not any("begin at the new bounds" in m for m in said)
    for change in ({"time_zone": "Asia/Tokyo"}, {"week_start": "6"}):
        said = [str(m) for m in alice_client.post("/budget/settings/", {**form, **change}, follow=True).context["messages"]]
        assert any(m.startswith("The day, week and month now begin at the new bounds") for m in said), change


def test_the_live_fragment_is_the_same_partial(alice_client, acme):
    budget_policy_update(team=acme, changes={"daily_limit": "2"}, by=None)
    body = alice_client.get("/budget/live/").content.decode()
    assert "0 of 2 (0.0 %)" in body and "<html" not in body


def test_an_owner_saves_settings_and_the_change_is_recorded(alice_client, acme):
    response = alice_client.post("/budget/settings/", {"daily_limit": "5.25", "weekly_limit": "", "monthly_limit": "",
                                                       "calls_per_minute": "10", "max_concurrent": "",
                                                       "time_zone": "", "week_start": "6",
                                                       "alert_thresholds": "50, 90", "cap_handler": "test.paid",
                                                       "cap_daily": "1"})
    assert response.status_code == 302
    policy = budget_policy_get(team=acme)
    assert (policy.daily_limit, policy.calls_per_minute, policy.week_start, policy.alert_thresholds) == (
        5_250_000, 10, 6, [50, 90])
    assert acme.handler_caps.get().daily_limit == 1_000_000
    assert PolicyChange.objects.get(team=acme).by_label == "alice"
    html = alice_client.get("/budget/").content.decode()
    assert 'value="5.25"' in html and "Remove cap" in html and "Budget settings saved." in html


def test_the_page_takes_an_amount_typed_with_spaces_around_it(alice_client, acme):
    """The API takes plain digits only; a person's form keeps forgiving the spaces they typed."""
    response = alice_client.post("/budget/settings/", {"daily_limit": " 5.25 "}, follow=True)
    assert "Budget settings saved." in response.content.decode()
    assert budget_policy_get(team=acme).daily_limit == 5_250_000


def test_a_cap_typed_without_its_handler_is_refused_under_the_handler_not_saved_as_nothing(alice_client, acme):
    """The amounts of "Cap a handler" were dropped when no handler was named, and the page said
    "Budget settings saved.": the cap the owner meant was never set."""
    response = alice_client.post("/budget/settings/", {"daily_limit": "5", "cap_handler": " ", "cap_daily": "0.2"})
    assert response.status_code == 400
    body = response.content.decode()
    assert ('<ul class="errorlist" id="error-cap_handler"><li>Name the handler these amounts cap.</li></ul>'
            in body)
    assert 'id="id_cap_daily" name="cap_daily" inputmode="decimal" value="0.2"' in body
    assert budget_policy_get(team=acme).daily_limit is None and not PolicyChange.objects.exists()
    assert not acme.handler_caps.exists()


def test_a_bad_amount_is_refused_with_the_reason_and_nothing_changes(alice_client, acme):
    response = alice_client.post("/budget/settings/", {"daily_limit": "-3"}, follow=True)
    assert "daily_limit: The amount cannot be negative." in response.content.decode()
    assert budget_policy_get(team=acme).daily_limit is None and not PolicyChange.objects.exists()


def test_members_and_viewers_read_the_settings_but_cannot_change_them(bob_client, vic_client, acme):
    for client in (bob_client, vic_client):
        html = client.get("/budget/").content.decode()
        assert "Owners and admins change these settings." in html and "budget-settings-form" not in html
        assert client.post("/budget/settings/", {"daily_limit": "1"}).status_code == 403
        assert client.post("/budget/caps/remove/", {"handler": "test.paid"}).status_code == 403
    assert budget_policy_get(team=acme).daily_limit is None


def test_an_owner_creates_and_ends_an_override_and_a_member_cannot(alice_client, bob_client, acme):
    expires = (timezone.now() + timedelta(hours=3)).astimezone(timezone.get_fixed_timezone(0))
    form = {"amount": "3.50", "expires_at": expires.strftime("%Y-%m-%dT%H:%M"), "reason": "quarter end"}
    bob_client.post("/budget/overrides/new/", form)
    assert not Override.objects.exists()
    alice_client.post("/budget/overrides/new/", form)
    override = Override.objects.get(team=acme)
    assert (override.amount, override.reason) == (3_500_000, "quarter end")
    assert "quarter end" in alice_client.get("/budget/").content.decode()
    bob_client.post(f"/budget/overrides/{override.public_id}/end/")
    override.refresh_from_db()
    assert override.expires_at > timezone.now()
    alice_client.post(f"/budget/overrides/{override.public_id}/end/")
    override.refresh_from_db()
    assert override.expires_at <= timezone.now()


@pytest.mark.parametrize("expires_at", ["", "2026-13-01T25:00"])
def test_a_member_posting_an_override_from_a_stale_page_is_told_the_refusal_not_a_fields_fault(bob_client, acme,
                                                                                                expires_at):
    """The page offers a member no override form; a post from one drawn before they lost the owner
    role is refused in budget_override_refusal's words whatever it holds, not sent to fix an expiry
    on a form the page no longer shows."""
    response = bob_client.post("/budget/overrides/new/", {"amount": "1", "expires_at": expires_at, "reason": "x"})
    page = response.content.decode()
    refusal = budget_override_refusal(by=acme.memberships.get(user__username="bob")).message
    said = page[page.index('<ul class="messages" role="status">'):]
    assert (response.status_code, re.findall(r'<li class="(\w+)">(.*?)</li>', said[:said.index("</ul>")])) == (
        400, [("error", refusal)])
    assert not Override.objects.exists()


def test_an_admin_is_refused_overrides_alike_on_the_page_the_api_and_the_service(alice, bob, acme):
    """One refusal, budget_override_refusal: an admin changes the budget's settings but not its
    overrides. The page says its words instead of the form and End now, the API answers it (403)
    and the service raises it; nothing is made or ended."""
    bob_admin = membership_set_role(membership=acme.memberships.get(user=bob), role=Role.ADMIN, by=None)
    override = budget_override_create(team=acme, amount="2", expires_at=timezone.now() + timedelta(hours=1),
                                      reason="r", by=None, user=alice)
    refusal = budget_override_refusal(by=bob_admin)
    assert refusal is not None and budget_override_refusal(by=acme.memberships.get(user=alice)) is None
    expected = {"code": "permission_denied", "message": refusal.message, "fields": {}}

    page = logged_in(bob).get("/budget/").content.decode()
    assert 'id="override-form"' not in page and "/end/" not in page
    assert f'<p class="muted" id="override-refused">{refusal.message}</p>' in page
    assert 'id="override-form"' in logged_in(alice).get("/budget/").content.decode()

    api = logged_in(bob)
    expires = (timezone.now() + timedelta(hours=2)).isoformat()
    made = api.post("/api/v1/budget/overrides/", {"amount": "1", "expires_at": expires, "reason": "x"},
                    content_type="application/json")
    ended = api.post(f"/api/v1/budget/overrides/{override.public_id}/end/", content_type="application/json")
    assert [(r.status_code, r.json()["error"]) for r in (made, ended)] == [(403, expected)] * 2

    for act in (lambda: budget_override_create(team=acme, amount="1", expires_at=timezone.now() + timedelta(hours=1),
                                               reason="x", by=bob_admin),
                lambda: budget_override_end(override=override, by=bob_admin)):
        with pytest.raises(PermissionDenied) as refused:
            act()
        assert refused.value.as_dict() == expected
    assert list(Override.objects.filter(team=acme)) == [override]
    assert Override.objects.get(pk=override.pk).expires_at == override.expires_at


def test_ending_an_override_from_a_page_drawn_before_it_ended_says_it_had_ended(alice_client, alice, acme):
    override = budget_override_create(team=acme, amount="2", expires_at=timezone.now() + timedelta(hours=1),
                                      reason="r", by=None, user=alice)
    ended_at = budget_override_end(override=override, by=None).expires_at

    page = alice_client.post(f"/budget/overrides/{override.public_id}/end/", follow=True).content.decode()
    assert "This override has already ended." in page and "Override ended." not in page
    assert Override.objects.get(pk=override.pk).expires_at == ended_at


def test_an_expiry_shaped_like_a_time_that_is_none_is_named_not_a_500(alice_client, acme):
    form = {"amount": "3.50", "expires_at": "2027-13-45T99:99", "reason": "quarter end"}
    response = alice_client.post("/budget/overrides/new/", form)
    assert response.status_code == 400
    assert "Give the expiry as a date and time." in response.content.decode()
    assert not Override.objects.exists()


def test_an_alert_shows_as_a_banner_on_every_page_of_the_team(alice_client, charlie_client, acme):
    budget_policy_update(team=acme, changes={"daily_limit": "1.00"}, by=None)
    job = paid(acme, "0.90")
    claim(job.public_id)
    job.refresh_from_db()
    from budgets.services import budget_settle

    budget_settle(job=job, actual_micros=900_000)
    assert Alert.objects.filter(team=acme).count() == 1
    for url in ("/", "/budget/", "/jobs/"):
        banner = alice_client.get(url).content.decode()
        # Up until the window ends: when the threshold was reached, what was spent then, when it resets.
        assert "The team reached 80 % of its daily limit of 1</a>, <time" in banner
        assert "(0.9 spent then); the limit resets <time" in banner
    assert 'id="budget-alerts"' not in charlie_client.get("/").content.decode()


def test_a_reason_longer_than_the_record_keeps_is_refused_by_field_not_cut(alice_client, acme):
    expires = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    response = alice_client.post("/budget/overrides/new/", {"amount": "1", "expires_at": expires, "reason": "x" * 501})
    assert response.status_code == 400
    assert "At most 500 characters (this is 501)." in response.content.decode()
    assert not Override.objects.exists()
    assert alice_client.post("/budget/overrides/new/", {"amount": "1", "expires_at": expires,
                                                        "reason": "x" * 500}).status_code == 302


def banner_of(client) -> str:
    return client.get("/budget/banner/").content.decode()


def test_the_banner_follows_the_limit_in_force_raised_lowered_or_removed(alice_client, charlie_client, acme):
    """An alert is about a limit: raised above the spend, the banner goes; the spend is measured
    against a changed limit at once, and its thresholds fire again against it."""
    budget_policy_update(team=acme, changes={"daily_limit": "1.00"}, by=None)
    run_job(paid(acme, "0.90").public_id)
    assert "reached 80 % of its daily limit of 1</a>" in banner_of(alice_client)
    assert 'id="budget-alerts"' not in banner_of(charlie_client)

    budget_policy_update(team=acme, changes={"daily_limit": "3.00"}, by=None)
    assert 'id="budget-alerts"' not in banner_of(alice_client)
    assert 'id="budget-alerts"' not in alice_client.get("/jobs/").content.decode()

    run_job(paid(acme, "1.60").public_id)  # 2.5 of 3: 80 % of the new limit
    banner = banner_of(alice_client)
    assert "reached 80 % of its daily limit of 3</a>" in banner and "(2.5 spent then)" in banner

    budget_policy_update(team=acme, changes={"daily_limit": "2.00"}, by=None)  # under today's 2.5
    banner = banner_of(alice_client)
    assert "reached 100 % of its daily limit of 2</a>" in banner and "limit of 3" not in banner
    assert sorted(Alert.objects.filter(team=acme, limit=2_000_000).values_list("threshold", flat=True)) == [80, 100]

    budget_policy_update(team=acme, changes={"daily_limit": None}, by=None)
    assert 'id="budget-alerts"' not in banner_of(alice_client)


def test_the_banner_says_the_current_windows_alert_not_one_of_windows_a_new_zone_left_behind(alice_client, acme):
    """Moving the budget's zone starts today's window from nothing at the new bounds; the old
    day's 80 % alert (its window not over in UTC) stayed up over it: "reached 80 % … resets in
    1 hour" while today's window, 0 spent, reset in 16 hours."""
    from datetime import UTC
    from zoneinfo import ZoneInfo

    from budgets.windows import window_at

    budget_policy_update(team=acme, changes={"daily_limit": "1.00"}, by=None)
    run_job(paid(acme, "0.90").public_id)
    assert "reached 80 % of its daily limit of 1</a>" in banner_of(alice_client)
    now = timezone.now()
    # A zone whose day is not UTC's now (+14 h from 10:00 UTC on, -12 h before 12:00 UTC).
    zone = next(name for name in ("Pacific/Kiritimati", "Etc/GMT+12")
                if window_at("day", now, zone=ZoneInfo(name)).start != window_at("day", now, zone=UTC).start)
    budget_policy_update(team=acme, changes={"time_zone": zone}, by=None)
    assert 'id="budget-alerts"' not in banner_of(alice_client)

    run_job(paid(acme, "0.85").public_id)  # 85 % of the new day's limit
    banner = banner_of(alice_client)
    assert "reached 80 % of its daily limit of 1</a>" in banner and "(0.85 spent then)" in banner
    assert "0.9 spent then" not in banner


def test_a_threshold_taken_out_takes_its_banner_down(alice_client, acme):
    budget_policy_update(team=acme, changes={"daily_limit": "1.00", "alert_thresholds": [50, 90]}, by=None)
    run_job(paid(acme, "0.60").public_id)
    assert "reached 50 % of its daily limit of 1</a>" in banner_of(alice_client)
    budget_policy_update(team=acme, changes={"alert_thresholds": [90]}, by=None)
    assert 'id="budget-alerts"' not in banner_of(alice_client)


def test_a_handler_cap_s_banner_follows_the_cap(alice_client, acme):
    budget_policy_update(team=acme, changes={"handler_caps": {"test.paid": {"daily": "1.00"}}}, by=None)
    run_job(paid(acme, "0.90").public_id)
    assert "Handler test.paid reached 80 % of its daily limit of 1</a>" in banner_of(alice_client)
    budget_policy_update(team=acme, changes={"handler_caps": {"test.paid": {"daily": None}}}, by=None)
    assert 'id="budget-alerts"' not in banner_of(alice_client)


def test_charlie_gets_404_for_acme_s_override_and_his_budget_page_shows_only_globex(charlie_client, alice, acme):
    budget_policy_update(team=acme, changes={"daily_limit": "7.77"}, by=None)
    override = budget_override_create(team=acme, amount="2", expires_at=timezone.now() + timedelta(hours=1),
                                      reason="acme secret", by=None, user=alice)
    held = paid(acme, "0.10")
    assert charlie_client.post(f"/budget/overrides/{override.public_id}/end/").status_code == 404
    override.refresh_from_db()
    assert override.expires_at > timezone.now()
    html = charlie_client.get("/budget/").content.decode()
    assert "7.77" not in html and "acme secret" not in html and held.public_id not in html
    assert "7.77" not in charlie_client.get("/budget/live/").content.decode()
    charlie_client.post("/budget/settings/", {"daily_limit": "1"})
    assert budget_policy_get(team=acme).daily_limit == 7_770_000


def test_anonymous_visitors_are_sent_to_login(client):
    for url in ("/budget/", "/budget/live/"):
        assert client.get(url).status_code == 302


def test_staff_see_every_budget_admin_page_and_edit_the_policy_through_the_service(acme, alice):
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123456")
    client = logged_in(staff)
    policy = budget_policy_get(team=acme)
    for model in ("budgetpolicy", "handlercap", "usage", "ledger", "policychange", "alert", "override"):
        assert client.get(f"/admin/budgets/{model}/").status_code == 200, model
    response = client.post(f"/admin/budgets/budgetpolicy/{policy.pk}/change/", {
        "daily_amount": "4.5", "weekly_amount": "", "monthly_amount": "", "calls_per_minute": "", "max_concurrent": "",
        "time_zone": "", "week_start": "0", "alert_thresholds": "[80, 100]"})
    assert response.status_code == 302
    assert budget_policy_get(team=acme).daily_limit == 4_500_000
    assert PolicyChange.objects.get(team=acme).by_label == "admin root"  # as the admin's other actions name the operator
    refused = client.post(f"/admin/budgets/budgetpolicy/{policy.pk}/change/", {
        "daily_amount": "-1", "week_start": "0", "alert_thresholds": "[80]"})
    assert refused.status_code == 200 and "The amount cannot be negative." in refused.content.decode()
    assert client.get("/admin/budgets/ledger/add/").status_code == 403
    expires = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    created = client.post("/admin/budgets/override/add/", {"team": acme.pk, "amount_text": "2.50",
                                                            "expires_at_0": expires[:10], "expires_at_1": expires[11:],
                                                            "reason": "incident"})
    assert created.status_code == 302
    override = Override.objects.get(team=acme)
    assert (override.amount, override.created_by, override.reason) == (2_500_000, staff, "incident")
    bad = client.post("/admin/budgets/override/add/", {"team": acme.pk, "amount_text": "NaN",
                                                        "expires_at_0": expires[:10], "expires_at_1": expires[11:],
                                                        "reason": "x"})
    assert bad.status_code == 200 and "The amount must be a finite number." in bad.content.decode()
    assert Override.objects.count() == 1


def test_the_overview_shows_the_team_s_budget_pulse(alice_client, acme):
    budget_policy_update(team=acme, changes={"daily_limit": "1.00", "max_concurrent": 1}, by=None)
    claim(paid(acme, "0.30").public_id)
    run_job(paid(acme, "0.10").public_id)  # held: the one slot is taken
    html = alice_client.get("/").content.decode()
    assert 'id="budget-summary"' in html and "0.3 of 1 (30.0 %)" in html
    assert "1 of at most 1" in html and '<dd id="budget-held-count">1</dd>' in html


def test_the_spend_chart_stacks_each_day_by_handler_under_the_daily_limit_line(alice_client, charlie_client, acme,
                                                                                globex):
    import re

    from budgets.models import Ledger
    from pulse_site.charts import HEIGHT, PAD_BOTTOM, PAD_TOP

    budget_policy_update(team=acme, changes={"daily_limit": "2.00"}, by=None)
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    for days_ago, handler, amount in ((1, "demo.report", 300_000), (1, "pulse.sleep", 700_000),
                                      (0, "demo.report", 250_000)):
        Ledger.objects.create(team=acme, job_id=f"JB_CHART{days_ago}{handler}", handler=handler, attempt=1,
                              kind=Ledger.Kind.CHARGE, window_kind="day", window_start=today - timedelta(days=days_ago),
                              window_end=today - timedelta(days=days_ago - 1), amount=amount)
    Ledger.objects.create(team=globex, job_id="JB_CHARTGLOBEX", handler="pulse.secret", attempt=1,
                          kind=Ledger.Kind.CHARGE, window_kind="day", window_start=today,
                          window_end=today + timedelta(days=1), amount=9_000_000)

    html = alice_client.get("/budget/").content.decode()
    section = html[html.index('id="budget-history"'):html.index('id="budget-settings"')]
    yesterday = (today - timedelta(days=1)).strftime("%b %d")
    assert f"<title>{yesterday}: 0.3 demo.report</title>" in section
    assert f"<title>{yesterday}: 0.7 pulse.sleep</title>" in section
    assert "max 1" in section  # the tallest day: 0.3 + 0.7
    # The limit of 2 is the top of the scale: its line is drawn at the top of the bars' room, and
    # yesterday's 1.0 reaches half of it.
    line = re.search(r'<line class="chart-line" x1="0" y1="([\d.]+)"', section)
    assert line and float(line.group(1)) == PAD_TOP
    assert "daily limit 2" in section
    heights = [float(h) for h in re.findall(r'<rect class="series-\d" [^>]*height="([\d.]+)"><title>'
                                             + re.escape(yesterday), section)]
    assert sum(heights) == pytest.approx((HEIGHT - PAD_TOP - PAD_BOTTOM) / 2, abs=0.02)
    assert "pulse.secret" not in section and "max 9" not in section  # Globex's spend
    # The table: a column per handler (demo.report, pulse.sleep), today's pulse.sleep cell empty;
    # each cell labelled with its column, which a phone shows beside it.
    rows = re.findall(r'<tr><td data-label="Day">([\d-]+)</td>((?:<td data-label="[^"]*"[^>]*>[^<]*</td>)*)</tr>', section)
    assert [(day, re.findall(r'<td data-label="([^"]*)"[^>]*>([^<]*)</td>', cells)) for day, cells in rows] == [
        (today.strftime("%Y-%m-%d"), [("demo.report", "0.25"), ("pulse.sleep", ""), ("Total", "0.25")]),
        ((today - timedelta(days=1)).strftime("%Y-%m-%d"), [("demo.report", "0.3"), ("pulse.sleep", "0.7"), ("Total", "1")])]

    assert "pulse.secret" in charlie_client.get("/budget/").content.decode()
    budget_policy_update(team=acme, changes={"daily_limit": ""}, by=None)
    assert "chart-line" not in alice_client.get("/budget/").content.decode()


def test_the_change_history_says_each_changed_handler_cap_in_words(alice_client, acme):
    """A cap change read as a Python dict ({'pulse.sleep': {'daily': '1.5', 'weekly': None, …}})."""
    budget_policy_update(team=acme, changes={"handler_caps": {"pulse.sleep": {"daily": "1.5"}}}, by=None)
    budget_policy_update(team=acme, changes={"handler_caps": {"pulse.sleep": {"daily": "1.5", "monthly": "2000"},
                                                              "pulse.noop": {"weekly": "3"}}}, by=None)

    page = " ".join(alice_client.get("/budget/").content.decode().split())

    assert ("<div><code>handler_caps.pulse.noop</code>: no cap → daily unlimited · weekly 3 · monthly unlimited</div>"
            "<div><code>handler_caps.pulse.sleep</code>: daily 1.5 · weekly unlimited · monthly unlimited → "
            "daily 1.5 · weekly unlimited · monthly 2,000</div>") in page
    assert ("<code>handler_caps.pulse.sleep</code>: no cap → daily 1.5 · weekly unlimited · monthly unlimited"
            in page)
    assert "{" not in page.split("Change history")[1].split("</table>")[0]
