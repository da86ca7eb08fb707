"""A time zone is a place: every field that takes one (the team's, the budget's, a schedule's, in
the API and the dashboard) takes the same names and refuses the same ones by field."""

from __future__ import annotations

import pytest

from budgets.services import budget_policy_get
from pulse_site.teams.models import Team
from schedules.models import Schedule

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("zone", ["localtime", "Factory", "Mars/Olympus", "posixrules"])
def test_a_name_that_is_no_place_is_refused_everywhere_a_zone_is_taken(alice_client, acme, zone):
    """"localtime" is the machine's own zone: on a deployment of several machines, another one on each."""
    team = alice_client.patch("/api/v1/team/", {"time_zone": zone}, content_type="application/json")
    assert team.status_code == 400 and "time_zone" in team.json()["error"]["fields"]
    budget = alice_client.patch("/api/v1/budget/", {"time_zone": zone}, content_type="application/json")
    assert budget.status_code == 400 and "time_zone" in budget.json()["error"]["fields"]
    schedule = alice_client.post("/api/v1/schedules/", {"name": "nightly", "handler": "pulse.noop", "cron": "0 3 * * *",
                                                        "time_zone": zone}, content_type="application/json")
    assert schedule.status_code == 400 and "time_zone" in schedule.json()["error"]["fields"]
    form = alice_client.post("/schedules/new/", {"name": "nightly", "handler": "pulse.noop", "cron": "0 3 * * *",
                                                 "time_zone": zone, "payload": "{}", "overlap_policy": "allow",
                                                 "misfire_policy": "once", "enabled": "on"})
    assert form.status_code == 400 and list(form.context["form"].errors) == ["time_zone"]

    assert Team.objects.get(pk=acme.pk).time_zone == "UTC"
    assert budget_policy_get(team=acme).time_zone == ""
    assert not Schedule.objects.exists()
    assert zone not in alice_client.get("/team/").content.decode().split('name="time_zone"')[1].split("</select>")[0]


def test_a_place_is_taken_everywhere(alice_client, acme):
    assert alice_client.patch("/api/v1/team/", {"time_zone": "America/Sao_Paulo"},
                              content_type="application/json").status_code == 200
    assert alice_client.patch("/api/v1/budget/", {"time_zone": "Asia/Kolkata"},
                              content_type="application/json").status_code == 200
    assert alice_client.post("/api/v1/schedules/", {"name": "n", "handler": "pulse.noop", "cron": "0 3 * * *",
                                                    "time_zone": "Pacific/Chatham"},
                             content_type="application/json").status_code == 201
