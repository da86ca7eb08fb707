"""What a person's leaving takes with them. An API token shows its secret once, to its maker: it
works while its maker may make tokens in its team (an owner or admin, an active user), so that
someone removed, demoted or deactivated keeps no way in through a secret they copied."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pulse_site.live.models import Event
from pulse_site.teams.models import ApiToken, Membership
from pulse_site.teams.services import membership_remove, membership_set_role, token_create

pytestmark = pytest.mark.django_db
Role = Membership.Role


def membership(team, user) -> Membership:
    return Membership.objects.get(team=team, user=user)


def bobs_token(acme, bob) -> tuple[ApiToken, APIClient]:
    """Bob made an admin, and a write token made by him."""
    membership_set_role(membership=membership(acme, bob), role=Role.ADMIN, by=None)
    token, secret = token_create(team=acme, name="bob's ci", access="write", expires_at=None,
                                 by=membership(acme, bob))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/team/").status_code == 200
    return token, client


def test_removing_a_member_revokes_the_tokens_they_made_and_no_other(acme, alice, bob, alice_client):
    token, bobs = bobs_token(acme, bob)
    alices, alices_secret = token_create(team=acme, name="alice's", access="read", expires_at=None,
                                         by=membership(acme, alice))
    response = alice_client.delete(f"/api/v1/team/members/{bob.pk}/")
    assert response.status_code == 204
    assert bobs.get("/api/v1/team/").status_code == 401
    assert bobs.post("/api/v1/jobs/", {"handler": "pulse.noop", "payload": {}}, format="json").status_code == 401
    token.refresh_from_db()
    assert token.revoked_at is not None
    alices.refresh_from_db()
    assert alices.revoked_at is None
    revoked = Event.objects.get(team=acme, kind="token.revoked")
    assert revoked.subject == token.public_id
    assert revoked.payload == {"name": "bob's ci", "by": "alice", "why": "bob was removed from the team"}
    # Bob's own past actions still name him.
    assert Event.objects.get(team=acme, kind="token.created", subject=token.public_id).payload["by"] == "bob"
    assert Event.objects.get(team=acme, kind="member.removed").payload["username"] == "bob"


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_demoting_an_admin_below_admin_revokes_the_tokens_they_made(acme, bob, alice_client, role):
    token, bobs = bobs_token(acme, bob)
    response = alice_client.patch(f"/api/v1/team/members/{bob.pk}/", {"role": role}, content_type="application/json")
    assert response.status_code == 200
    assert bobs.get("/api/v1/team/").status_code == 401
    assert Event.objects.get(team=acme, kind="token.revoked").payload == {
        "name": "bob's ci", "by": "alice", "why": f"bob is now {role}"}


def test_an_admin_made_owner_keeps_the_tokens_they_made(acme, bob, alice_client):
    token, bobs = bobs_token(acme, bob)
    assert alice_client.patch(f"/api/v1/team/members/{bob.pk}/", {"role": "owner"}, content_type="application/json").status_code == 200
    assert bobs.get("/api/v1/team/").status_code == 200
    assert not Event.objects.filter(team=acme, kind="token.revoked").exists()


def test_removing_a_member_from_one_team_leaves_their_tokens_in_another(acme, umbrella, alice, bob, alice_client):
    membership_set_role(membership=membership(acme, bob), role=Role.ADMIN, by=None)
    Membership.objects.create(team=umbrella, user=bob, role=Role.ADMIN)
    _, secret = token_create(team=umbrella, name="umbrella ci", access="read", expires_at=None,
                             by=membership(umbrella, bob))
    membership_remove(membership=membership(acme, bob), by=membership(acme, alice))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/team/").json()["name"] == "Umbrella"


def test_a_token_whose_maker_is_deactivated_stops_working_and_is_listed_inactive(acme, bob, alice_client):
    token, bobs = bobs_token(acme, bob)
    bob.is_active = False
    bob.save(update_fields=["is_active"])  # what the admin's user page does
    assert bobs.get("/api/v1/team/").status_code == 401
    listed = {row["id"]: row for row in alice_client.get("/api/v1/tokens/").json()}
    assert listed[token.public_id]["active"] is False


def test_the_activity_says_why_a_token_was_revoked(acme, bob, alice_client):
    bobs_token(acme, bob)
    alice_client.delete(f"/api/v1/team/members/{bob.pk}/")
    texts = [row["text"] for row in alice_client.get("/api/v1/events/?family=token").json()["results"]]
    assert texts[0] == "Token bob's ci revoked by alice: bob was removed from the team"


def test_the_team_page_says_a_token_stopped_with_its_makers_deactivation(acme, bob, alice_client):
    token, _ = bobs_token(acme, bob)
    bob.is_active = False
    bob.save(update_fields=["is_active"])
    page = alice_client.get("/team/").content.decode()
    row = page[page.index(f'id="token-{token.public_id}"'):]
    assert '<span class="badge badge-off">maker deactivated</span>' in row[:row.index("</tr>")]
