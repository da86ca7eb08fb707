"""Money as people read it: wherever the dashboard shows an amount (pages, live fragments, charts,
sentences) its digits are grouped by thousands, as the dashboard's counts are; wherever a form or a
machine reads one back (inputs, the API, CSV, events' fields) it stays plain digits."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.utils import timezone

from budgets.models import Alert
from budgets.services import budget_policy_update, budget_settle
from budgets.templatetags.budget_tags import money, money_or_blank
from jobs.runner import claim, run_job
from jobs.services import job_submit
from pulse_site.activity import activity_text
from schedules.services import schedule_create

pytestmark = pytest.mark.django_db

BIG = "999999999.99"  # a daily limit a team may set (amounts go up to 10^12)
COST = "1234567.5"


def paid(team, cost: str):
    return job_submit(team=team, handler="test.paid", payload={"cost": cost}, source="api").job


def text(response) -> str:
    """The page's text with entities decoded and runs of white space as one space."""
    assert response.status_code == 200, response.status_code
    return " ".join(html.unescape(response.content.decode()).split())


def test_the_money_filter_groups_thousands_and_the_input_filter_does_not():
    assert [money(m) for m in (999_999_999_990_000, 1_234_567_500_000, 1_000_000_000, 999_000_000, 1, 0, None)] == [
        "999,999,999.99", "1,234,567.5", "1,000", "999", "0.000001", "0", "unlimited"]
    assert money_or_blank(999_999_999_990_000) == "999999999.99"


def test_the_budget_page_and_its_live_fragment_group_amounts_and_keep_the_inputs_plain(alice_client, vic_client,
                                                                                       acme):
    budget_policy_update(team=acme, changes={"daily_limit": BIG}, by=None)
    run_job(paid(acme, COST).public_id)
    page = text(alice_client.get("/budget/"))
    assert "1,234,567.5 of 999,999,999.99 (0.1 %)" in page
    assert "committed 1,234,567.5 · reserved 0 · remaining 998,765,432.49" in page
    assert ('<td data-label="test.paid" class="code-label">1,234,567.5</td>'  # the 30 days' table: test.paid, total
            '<td data-label="Total">1,234,567.5</td></tr>') in page
    assert ": 1,234,567.5 test.paid</title>" in page and "daily limit 999,999,999.99" in page  # the chart
    assert "<code>daily_limit</code>: unlimited → 999,999,999.99" in page  # the change history
    assert 'name="daily_limit" inputmode="decimal" value="999999999.99"' in page  # the owner's form
    assert "<dt>Daily limit</dt><dd>999,999,999.99</dd>" in text(vic_client.get("/budget/"))  # a viewer's
    live = text(alice_client.get("/budget/live/"))
    assert "1,234,567.5 of 999,999,999.99 (0.1 %)" in live


def test_the_overview_groups_the_budget_s_amounts(alice_client, acme):
    budget_policy_update(team=acme, changes={"daily_limit": BIG}, by=None)
    run_job(paid(acme, COST).public_id)
    assert "1,234,567.5 of 999,999,999.99 (0.1 %)" in text(alice_client.get("/"))
    assert "daily limit 999,999,999.99" in text(alice_client.get("/overview/charts/"))


def test_a_job_s_page_row_and_status_group_its_cost_while_the_api_and_csv_keep_it_plain(alice_client, acme, acme_api):
    job = paid(acme, COST)
    run_job(job.public_id)
    url = f"/jobs/{job.public_id}/"
    for page in (url, url + "status/"):  # the page, and the fragment its live updates fetch
        assert '<dd id="job-cost">1,234,567.5 / 1,234,567.5</dd>' in text(alice_client.get(page))
    for page in ("/jobs/", url + "row/"):  # the list, and the row its live updates fetch
        assert '<td data-field="cost">1,234,567.5 / 1,234,567.5</td>' in text(alice_client.get(page))
    body = acme_api.get(f"/api/v1/jobs/{job.public_id}/").json()
    assert (body["cost_estimate"], body["cost_actual"]) == (COST, COST)
    csv = alice_client.get("/jobs/export.csv").content.decode()
    assert f",{COST},{COST}," in csv


def test_the_handler_pages_group_what_was_spent_the_cap_and_a_fixed_cost(alice_client, acme, acme_api, temp_handler):
    temp_handler("test.dear", cost="2500")(lambda ctx: None)
    budget_policy_update(team=acme, changes={"handler_caps": {"test.paid": {"daily": "2000000"}}}, by=None)
    run_job(paid(acme, COST).public_id)
    detail = text(alice_client.get("/handlers/test.paid/"))
    assert "<dt>Spent today / 30 days</dt><dd>1,234,567.5 / 1,234,567.5</dd>" in detail
    assert "<dt>Your team's cap</dt><dd>2,000,000 a day" in detail
    assert '<td data-label="Spent today / 30 days">1,234,567.5 / 1,234,567.5</td>' in text(alice_client.get("/handlers/"))
    assert acme_api.get("/api/v1/handlers/test.paid/").json()["team"]["spent"] == {"today": COST, "last_30_days": COST}
    assert "<dt>Cost per run</dt><dd>2,500</dd>" in text(alice_client.get("/handlers/test.dear/"))
    assert acme_api.get("/api/v1/handlers/test.dear/").json()["cost"] == "2500"


def test_the_new_job_preview_groups_the_estimate_and_the_reasons(alice_client, acme):
    budget_policy_update(team=acme, changes={"daily_limit": "2000000"}, by=None)
    claim(paid(acme, COST).public_id)
    body = text(alice_client.get("/jobs/new/preview/", {"handler": "test.paid", "payload": '{"cost": "1000000"}',
                                                        "priority": "0"}))
    assert 'data-verdict="held">Estimated cost <strong>1,000,000</strong>.' in body
    assert ("<li>1,234,567.5 spent or reserved + 1,000,000 estimate is over the team's daily limit of 2,000,000. "
            "(resumes <time") in body


def test_a_schedule_s_page_and_its_form_preview_group_the_projection_and_the_api_keeps_it_plain(alice_client, acme,
                                                                                                 acme_api):
    budget_policy_update(team=acme, changes={"monthly_limit": "1000000"}, by=None)
    schedule = schedule_create(team=acme, name="Hourly", handler="test.paid", cron="0 * * * *",
                               payload={"cost": "1"}, estimate_override="2500")
    page = text(alice_client.get(f"/schedules/{schedule.public_id}/"))
    assert "<dt>Estimate</dt><dd>2,500</dd>" in page
    assert "about 720 runs × 2,500 = 1,800,000 (60,000 a day on average)" in page
    assert "Alone, this schedule would pass the monthly limit of 1,000,000: its runs wait" in page
    preview = alice_client.get("/schedules/preview/", {"cron": "0 * * * *", "time_zone": "UTC",
                                                       "handler": "test.paid", "payload": "{}",
                                                       "estimate_override": "2500"}).json()
    assert preview["projection"] == "Next 30 days: about 720 runs × 2,500 = 1,800,000 (60,000 a day on average)"
    assert preview["over"].startswith("Alone, this schedule would pass the monthly limit of 1,000,000: ")
    projection = acme_api.get(f"/api/v1/schedules/{schedule.public_id}/").json()["projection"]
    assert (projection["per_run"], projection["total"]) == ("2500", "1800000")


def test_the_alert_banner_and_the_events_group_amounts(alice_client, acme):
    budget_policy_update(team=acme, changes={"daily_limit": "1000000"}, by=None)
    job = paid(acme, "800000")
    claim(job.public_id)
    job.refresh_from_db()
    budget_settle(job=job, actual_micros=800_000_000_000)
    assert Alert.objects.filter(team=acme).count() == 1
    banner = text(alice_client.get("/jobs/"))
    assert "The team reached 80 % of its daily limit of 1,000,000</a>, <time" in banner
    assert "(800,000 spent then); the limit resets <time" in banner
    assert "The team has spent 800,000 of its daily limit of 1,000,000 (80 % reached)." in text(
        alice_client.get("/activity/"))
    assert activity_text("job.completed", {"handler": "test.paid", "cost_actual": COST}) == (
        "test.paid completed, cost 1,234,567.5")


def test_an_override_s_amounts_are_grouped_on_the_budget_page(alice_client, acme):
    from budgets.services import budget_override_create

    budget_override_create(team=acme, amount="1500000", expires_at=timezone.now() + timedelta(hours=1),
                           reason="quarter end", by=None)
    assert "0 of 1,500,000" in text(alice_client.get("/budget/"))
