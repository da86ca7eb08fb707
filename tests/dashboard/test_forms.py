"""Every dashboard form keeps what was typed when it is refused: the page comes back (400) with
the typed values in their inputs and the reason next to the field, and nothing was saved."""

from __future__ import annotations

import re

import pytest

from budgets.models import BudgetPolicy
from jobs.models import Job
from pulse_site.teams.models import ApiToken, Membership
from schedules.models import Schedule

pytestmark = pytest.mark.django_db


def value_of(html: str, name: str) -> str | None:
    """The value attribute of the input (or the text of the textarea) called `name`."""
    tag = re.search(rf'<input[^>]*\bname="{re.escape(name)}"[^>]*>', html)
    if tag:
        value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
        return value.group(1) if value else None
    area = re.search(rf'<textarea[^>]*\bname="{re.escape(name)}"[^>]*>(.*?)</textarea>', html, re.S)
    return area.group(1).strip() if area else None


def selected(html: str, name: str, attribute: str = "name") -> str | None:
    select = re.search(rf'<select[^>]*\b{attribute}="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S)
    option = select and re.search(r'<option value="([^"]*)"[^>]*\bselected', select.group(1))
    return option.group(1) if option else None


def test_the_job_form_keeps_the_payload_and_priority_typed_when_a_field_is_refused(alice_client, acme):
    response = alice_client.post("/jobs/new/", {"handler": "pulse.sleep", "payload.steps": "0",
                                                "payload.seconds": "2.5", "priority": "7"})
    html = response.content.decode()
    assert response.status_code == 400
    assert (value_of(html, "payload.steps"), value_of(html, "payload.seconds"), value_of(html, "priority")) == (
        "0", "2.5", "7")
    assert 'class="errorlist' in html
    assert not Job.objects.exists()


def errors_of(html: str, auto_id: str) -> list[str]:
    """The reasons listed under the input whose id is `auto_id`."""
    listed = re.search(rf'<ul class="errorlist" id="{re.escape(auto_id)}_error">(.*?)</ul>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", listed.group(1)) if listed else []


def test_the_job_form_names_every_refused_field_at_once_the_payloads_among_them(alice_client, acme):
    # The priority is the form's to refuse, the delay the handler's schema: both are said in one go,
    # not the delay only once the priority has been fixed and the form sent again.
    response = alice_client.post("/jobs/new/", {"handler": "demo.report", "payload.title": "Weekly",
                                                "payload.delay": "100", "priority": "500"})
    html = response.content.decode()
    assert response.status_code == 400
    assert errors_of(html, "id_priority") == ["Ensure this value is less than or equal to 100."]
    assert errors_of(html, "id_payload.delay") == ["100 is greater than the maximum of 60"]
    assert errors_of(html, "id_payload.title") == []
    assert not Job.objects.exists()


def test_a_payload_input_the_form_refuses_is_not_refused_again_by_the_schema(alice_client, acme):
    response = alice_client.post("/jobs/new/", {"handler": "demo.report", "payload.title": "Weekly",
                                                "payload.delay": "soon", "priority": "500"})
    html = response.content.decode()
    assert response.status_code == 400
    assert errors_of(html, "id_payload.delay") == ["Enter a number."]
    assert not Job.objects.exists()


def test_the_schedule_form_names_a_refused_zone_and_a_refused_payload_field_at_once(alice_client, acme):
    form = {"name": "Morning report", "description": "", "handler": "demo.report", "payload.title": "Daily",
            "payload.delay": "100", "cron": "0 9 * * *", "time_zone": "Mars/Olympus", "enabled": "on",
            "overlap_policy": "queue", "misfire_policy": "all", "estimate_override": ""}
    response = alice_client.post("/schedules/new/", form)
    html = response.content.decode()
    assert response.status_code == 400
    assert errors_of(html, "id_time_zone") != []
    assert errors_of(html, "id_payload.delay") == ["100 is greater than the maximum of 60"]
    assert not Schedule.objects.exists()


def test_the_schedule_form_keeps_everything_typed_when_the_cron_is_refused(alice_client, acme):
    form = {"name": "Morning report", "description": "for the board", "handler": "demo.report",
            "payload": '{"delay": 3}', "cron": "61 9 * * *", "time_zone": "Europe/Berlin", "enabled": "on",
            "overlap_policy": "queue", "misfire_policy": "all", "estimate_override": "1.25"}
    response = alice_client.post("/schedules/new/", form)
    html = response.content.decode()
    assert response.status_code == 400
    assert (value_of(html, "name"), value_of(html, "cron"), value_of(html, "estimate_override")) == (
        "Morning report", "61 9 * * *", "1.25")
    assert value_of(html, "payload") == "{&quot;delay&quot;: 3}"
    assert (selected(html, "overlap_policy"), selected(html, "misfire_policy")) == ("queue", "all")
    assert 'id="id_cron_error"' in html
    assert not Schedule.objects.exists()


def test_editing_a_schedule_keeps_the_new_values_typed_when_the_zone_is_refused(alice_client, acme):
    from schedules.services import schedule_create

    schedule = schedule_create(team=acme, name="Nightly", handler="pulse.noop", cron="0 2 * * *")
    form = {"name": "Nightly, renamed", "description": "", "handler": "pulse.noop", "payload": "{}",
            "cron": "30 3 * * *", "time_zone": "Mars/Olympus", "overlap_policy": "skip", "misfire_policy": "once",
            "estimate_override": ""}
    response = alice_client.post(f"/schedules/{schedule.public_id}/edit/", form)
    html = response.content.decode()
    assert response.status_code == 400
    assert (value_of(html, "name"), value_of(html, "cron")) == ("Nightly, renamed", "30 3 * * *")
    assert 'id="id_time_zone_error"' in html
    schedule.refresh_from_db()
    assert (schedule.name, schedule.cron) == ("Nightly", "0 2 * * *")


def test_the_budget_settings_keep_every_limit_typed_when_one_is_refused(alice_client, acme):
    form = {"daily_limit": "12.50", "weekly_limit": "lots", "monthly_limit": "400", "calls_per_minute": "30",
            "max_concurrent": "4", "alert_thresholds": "50, 90", "time_zone": "", "week_start": "6",
            "over_budget": "fail", "cap_handler": "", "cap_daily": "", "cap_weekly": "", "cap_monthly": ""}
    response = alice_client.post("/budget/settings/", form)
    html = response.content.decode()
    assert response.status_code == 400
    assert [value_of(html, name) for name in ("daily_limit", "weekly_limit", "monthly_limit", "calls_per_minute",
                                              "max_concurrent", "alert_thresholds")] == [
        "12.50", "lots", "400", "30", "4", "50, 90"]
    assert (selected(html, "week_start"), selected(html, "over_budget")) == ("6", "fail")
    assert 'id="error-weekly_limit"' in html and 'aria-invalid="true" aria-describedby="error-weekly_limit"' in html
    policy = BudgetPolicy.objects.filter(team=acme).first()
    assert policy is None or policy.daily_limit is None


def test_a_refused_handler_cap_keeps_the_handler_and_amounts_typed(alice_client, acme):
    response = alice_client.post("/budget/settings/", {"cap_handler": "demo.report", "cap_daily": "-1",
                                                       "cap_weekly": "9", "cap_monthly": ""})
    html = response.content.decode()
    assert response.status_code == 400
    assert (value_of(html, "cap_handler"), value_of(html, "cap_daily"), value_of(html, "cap_weekly")) == (
        "demo.report", "-1", "9")
    assert 'id="error-cap_daily"' in html


def test_a_refused_budget_override_keeps_the_amount_expiry_and_reason_typed(alice_client, acme):
    response = alice_client.post("/budget/overrides/new/", {"amount": "0", "expires_at": "2099-01-01T10:00",
                                                            "reason": "quarter close"})
    html = response.content.decode()
    assert response.status_code == 400
    assert (value_of(html, "amount"), value_of(html, "expires_at"), value_of(html, "reason")) == (
        "0", "2099-01-01T10:00", "quarter close")
    assert 'id="error-amount"' in html


def test_adding_an_unknown_member_keeps_the_username_and_role_typed(alice_client, acme):
    response = alice_client.post("/team/members/add/", {"username": "nobody-here", "role": "admin"})
    html = response.content.decode()
    assert response.status_code == 400
    assert value_of(html, "username") == "nobody-here" and selected(html, "id_role", "id") == "admin"
    assert Membership.objects.filter(team=acme).count() == 3


def test_a_refused_token_keeps_its_name_access_and_expiry_typed(alice_client, acme):
    response = alice_client.post("/team/tokens/new/", {"name": "CI deploys", "access": "write",
                                                      "expires_on": "2001-01-01"})
    html = response.content.decode().split('id="token-create"', 1)[1]  # the team's own name field is above
    assert response.status_code == 400
    assert value_of(html, "name") == "CI deploys" and value_of(html, "expires_on") == "2001-01-01"
    assert re.search(r'<input[^>]*value="write"[^>]*checked', html)
    assert not ApiToken.objects.filter(team=acme).exists()
