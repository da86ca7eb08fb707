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


# --- the API with a session whose team its user has left -------------------------------------------

LEFT = ("Nothing was done: you are no longer in the team this browser was using. Load the dashboard "
        "again to carry on in one of your teams.")


def removed(team, user) -> None:
    from pulse_site.teams.services import membership_remove

    other = Membership.objects.filter(team=team).exclude(user=user).first()
    Membership.objects.filter(pk=other.pk).update(role=Membership.Role.OWNER)  # the team keeps an owner
    membership_remove(membership=Membership.objects.get(team=team, user=user), by=None)


@pytest.mark.parametrize("switched", [False, True], ids=["its first team", "a team switched to"])
def test_a_session_api_call_after_its_user_left_the_team_is_refused_not_run_in_another(
        alice_client, alice, bob, acme, umbrella, switched):
    if switched:
        Membership.objects.create(team=umbrella, user=bob, role=Membership.Role.MEMBER)
        switch(alice_client, umbrella)
    left, other = (umbrella, acme) if switched else (acme, umbrella)
    assert alice_client.get("/").status_code == 200  # a page drawn for `left`
    removed(left, alice)

    response = alice_client.post("/api/v1/jobs/", {"handler": "pulse.noop", "payload": {}},
                                 content_type="application/json")
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "permission_denied", "message": LEFT, "fields": {}}}
    assert alice_client.get("/api/v1/team/").status_code == 403
    assert not Job.objects.exists()
    # The dashboard shows the team left for, and the API follows it from then on.
    assert alice_client.get("/").context["team"] == other
    assert alice_client.get("/api/v1/team/").json()["name"] == other.name


def test_a_session_api_call_after_its_user_left_their_only_team_is_refused_saying_so(bob_client, bob, acme):
    bob_client.get("/")
    removed(acme, bob)
    response = bob_client.get("/api/v1/jobs/")
    assert (response.status_code, response.json()["error"]["message"]) == (403, LEFT)


def test_a_token_call_is_unaffected_by_a_stale_session_beside_it(alice_client, alice, acme, umbrella):
    from pulse_site.teams.services import token_create

    alice_client.get("/")
    removed(acme, alice)
    _, secret = token_create(team=acme, name="ci", access="read", expires_at=None, by=None)
    response = alice_client.get("/api/v1/team/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.json()["name"] == "Acme"
