"""A team's owners and admins rename it and set its time zone, on the team page and over the API;
bad input names its field and changes nothing; nobody else changes it."""

from __future__ import annotations

import pytest

from pulse_site.live.models import Event
from pulse_site.teams.models import Team

pytestmark = pytest.mark.django_db


def settings_of(team: Team) -> tuple[str, str, int | None]:
    team = Team.objects.get(pk=team.pk)
    return team.name, team.time_zone, team.job_retention_days


def test_an_owner_renames_the_team_and_sets_its_zone_over_the_api(alice_client, acme):
    response = alice_client.patch("/api/v1/team/", {"name": " Acme Labs ", "time_zone": "Europe/Berlin"},
                                  content_type="application/json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["time_zone"]) == ("Acme Labs", "Europe/Berlin")
    assert settings_of(acme) == ("Acme Labs", "Europe/Berlin", None)
    event = Event.objects.get(team=acme, kind="team.changed")
    assert event.payload == {"by": "alice", "before": {"name": "Acme", "time_zone": "UTC"},
                             "after": {"name": "Acme Labs", "time_zone": "Europe/Berlin"}}
    # The same values again change nothing and say nothing.
    alice_client.patch("/api/v1/team/", {"name": "Acme Labs"}, content_type="application/json")
    assert Event.objects.filter(team=acme, kind="team.changed").count() == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"time_zone": "Mars/Base", "job_retention_days": 5}, "time_zone"),
    ({"name": "   ", "job_retention_days": 5}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"slug": "new-slug"}, "slug"),
])
def test_bad_settings_are_a_400_naming_the_field_and_nothing_is_half_written(alice_client, acme, body, field):
    response = alice_client.patch("/api/v1/team/", body, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert settings_of(acme) == ("Acme", "UTC", None)


def test_every_bad_setting_is_named_at_once(alice_client, acme):
    body = {"name": "", "time_zone": "localtime", "job_retention_days": 0, "event_retention_days": "many"}
    response = alice_client.patch("/api/v1/team/", body, content_type="application/json")
    assert response.status_code == 400
    assert sorted(response.json()["error"]["fields"]) == ["event_retention_days", "job_retention_days", "name",
                                                          "time_zone"]
    assert settings_of(acme) == ("Acme", "UTC", None)


def test_members_viewers_tokens_and_other_teams_cannot_change_the_team(bob_client, vic_client, acme_api,
                                                                      charlie_client, acme, globex):
    for client in (bob_client, vic_client):
        assert client.patch("/api/v1/team/", {"name": "Mine"}, content_type="application/json").status_code == 403
        assert client.post("/team/settings/", {"name": "Mine", "time_zone": "UTC"}).status_code == 403
    assert acme_api.patch("/api/v1/team/", {"name": "Mine"}, format="json").status_code == 403
    # Charlie's requests reach only Globex, whatever he sends.
    assert charlie_client.patch("/api/v1/team/", {"name": "Globex Labs"},
                                content_type="application/json").status_code == 200
    assert charlie_client.post("/team/settings/", {"name": "Globex Two", "time_zone": "Asia/Tokyo"}).status_code == 302
    assert settings_of(acme) == ("Acme", "UTC", None)
    assert settings_of(globex)[:2] == ("Globex Two", "Asia/Tokyo")


def test_the_team_page_changes_the_name_and_zone_and_shows_errors_by_their_field(alice_client, bob_client, acme):
    page = alice_client.get("/team/").content.decode()
    assert 'id="team-settings"' in page and '<option value="Europe/Berlin">' in page
    assert page.count('id="id_name"') == 1 and 'id="id_team_name"' in page  # the token form has a name too
    assert 'id="team-settings"' not in bob_client.get("/team/").content.decode()

    bad = alice_client.post("/team/settings/", {"name": "", "time_zone": "Mars/Base"})
    assert bad.status_code == 400
    body = bad.content.decode()
    assert "This field is required." in body and "Select a valid choice. Mars/Base" in body
    assert "<details class=\"team-settings\" open>" in body
    assert settings_of(acme) == ("Acme", "UTC", None)

    saved = alice_client.post("/team/settings/", {"name": "Acme Labs", "time_zone": "America/New_York"}, follow=True)
    body = saved.content.decode()
    assert "Team settings saved." in body and "<h1>Acme Labs</h1>" in body
    assert "<dd>America/New_York</dd>" in body
    assert settings_of(acme) == ("Acme Labs", "America/New_York", None)


def test_a_new_team_zone_that_moves_the_budgets_windows_says_so_as_the_budget_page_does(alice_client, acme):
    """A budget without a zone of its own keeps its day, week and month in the team's: the team
    page moved them (today's spend started again from nothing, held jobs were let through) and
    said only "Team settings saved.", where the budget page warns."""
    from budgets.services import WINDOWS_MOVED, budget_policy_update

    moved = alice_client.post("/team/settings/", {"name": "Acme", "time_zone": "Asia/Tokyo"}, follow=True)
    assert [str(m) for m in moved.context["messages"]] == ["Team settings saved.", WINDOWS_MOVED]

    budget_policy_update(team=acme, changes={"time_zone": "Europe/Berlin"}, by=None)  # a zone of its own
    kept = alice_client.post("/team/settings/", {"name": "Acme", "time_zone": "America/New_York"}, follow=True)
    assert [str(m) for m in kept.context["messages"]] == ["Team settings saved."]
    renamed = alice_client.post("/team/settings/", {"name": "Acme Labs", "time_zone": "America/New_York"}, follow=True)
    assert [str(m) for m in renamed.context["messages"]] == ["Team settings saved."]


def test_the_api_tells_of_the_budget_windows_a_new_zone_moves_as_the_page_does(alice_client, acme):
    """The team API's PATCH saved a new zone that moved the budget's day, week and month, and
    said nothing of it: the page warns (above), and the budget API's PATCH has `notes`."""
    from budgets.services import WINDOWS_MOVED, budget_policy_update

    def patch(body: dict) -> list[str]:
        response = alice_client.patch("/api/v1/team/", body, content_type="application/json")
        assert response.status_code == 200
        return response.json()["notes"]

    assert patch({"time_zone": "Asia/Tokyo"}) == [WINDOWS_MOVED]
    assert patch({"name": "Acme Labs"}) == []
    budget_policy_update(team=acme, changes={"time_zone": "Europe/Berlin"}, by=None)  # a zone of its own
    assert patch({"time_zone": "America/New_York"}) == []
    assert alice_client.get("/api/v1/team/").json()["notes"] == []
