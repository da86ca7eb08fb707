"""A page stays with the team it was drawn for. Switching team in one tab switches the whole
session; a form still open in another tab, drawn for the team before, must not then change the
team switched to (adding a member, raising its budget, submitting its jobs there)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from budgets.models import BudgetPolicy
from jobs.models import Job
from jobs.services import job_submit
from pulse_site.teams.models import Membership

pytestmark = pytest.mark.django_db


def drawn_for(page: str, form_id: str) -> str:
    """The team the form `form_id` on `page` says it was drawn for."""
    form = page[page.index(f'id="{form_id}"'):]
    form = form[:form.index("</form>")]
    match = re.search(r'name="pulse_team" value="([^"]+)"', form)
    assert match, f"{form_id} says nothing of its team"
    return match.group(1)


def switch(client, team) -> None:
    assert client.post("/team/switch/", {"team": team.public_id}).status_code == 302


FORMS = [
    ("/team/", "member-add", "/team/members/add/", {"username": "charlie", "role": "admin"}),
    ("/budget/", "budget-settings-form", "/budget/settings/", {"daily_limit": "1000"}),
    ("/jobs/new/?handler=pulse.noop", "submit-form", "/jobs/new/", {"handler": "pulse.noop", "priority": "0"}),
]


@pytest.mark.parametrize(("page", "form_id", "action", "data"), FORMS)
def test_a_form_drawn_for_one_team_changes_nothing_after_a_switch_to_another(
        alice_client, acme, umbrella, charlie, page, form_id, action, data):
    switch(alice_client, acme)
    team = drawn_for(alice_client.get(page).content.decode(), form_id)
    assert team == acme.public_id
    switch(alice_client, umbrella)  # in another tab
    response = alice_client.post(action, {**data, "pulse_team": team})
    assert response.status_code == 409
    assert "drawn for Acme" in response.content.decode()
    assert "now shows Umbrella" in response.content.decode()
    assert not Membership.objects.filter(user=charlie).exists()
    assert not BudgetPolicy.objects.filter(daily_limit__isnull=False).exists()
    assert not Job.objects.exists()


def test_a_batch_of_a_bulk_action_after_a_switch_is_refused_in_the_scripts_words(alice_client, acme, umbrella):
    for team in (acme, umbrella):
        job_submit(team=team, handler="pulse.noop", payload={"n": 1}, source="api", run_after=timedelta(hours=1))
    switch(alice_client, acme)
    team = drawn_for(alice_client.get("/jobs/").content.decode(), "bulk-matching")
    switch(alice_client, umbrella)
    response = alice_client.post("/jobs/bulk/matching/", {"action": "cancel", "pulse_team": team},
                                 HTTP_ACCEPT="application/json")
    assert response.status_code == 409
    assert response.json() == {"errors": [
        "Nothing was done: this page was drawn for Acme, and this browser now shows Umbrella "
        "(switched in another tab). Load the page again to act on Umbrella."]}
    assert set(Job.objects.values_list("status", flat=True)) == {Job.Status.QUEUED}


LANDED = {
    "member-add": lambda team: Membership.objects.filter(team=team, user__username="charlie").exists(),
    "budget-settings-form": lambda team: BudgetPolicy.objects.filter(team=team, daily_limit__isnull=False).exists(),
    "submit-form": lambda team: Job.objects.filter(team=team).exists(),
}


@pytest.mark.parametrize(("page", "form_id", "action", "data"), FORMS)
def test_a_form_of_the_team_shown_goes_through(alice_client, acme, umbrella, charlie, page, form_id, action, data):
    switch(alice_client, acme)
    switch(alice_client, umbrella)
    team = drawn_for(alice_client.get(page).content.decode(), form_id)
    response = alice_client.post(action, {**data, "pulse_team": team})
    assert response.status_code == 302
    assert LANDED[form_id](umbrella) and not LANDED[form_id](acme)


def test_the_other_teams_job_is_a_404_while_the_session_shows_this_one(alice_client, acme, umbrella):
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api", run_after=timedelta(hours=1)).job
    switch(alice_client, umbrella)
    for url in (f"/jobs/{job.public_id}/", f"/jobs/{job.public_id}/row/", f"/api/v1/jobs/{job.public_id}/"):
        assert alice_client.get(url).status_code == 404, url
    assert job.public_id not in alice_client.get("/jobs/export.csv").content.decode()
    switch(alice_client, acme)
    assert alice_client.get(f"/jobs/{job.public_id}/").status_code == 200
