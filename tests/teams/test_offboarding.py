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


def test_an_override_still_names_its_owner_after_they_left_and_their_user_was_deleted(acme, alice, bob, bob_client):
    from datetime import timedelta

    from django.utils import timezone

    from budgets.services import budget_override_create

    override = budget_override_create(team=acme, amount="5", expires_at=timezone.now() + timedelta(days=1),
                                      reason="month-end run", by=membership(acme, alice))
    membership_set_role(membership=membership(acme, bob), role=Role.OWNER, by=None)
    membership_remove(membership=membership(acme, alice), by=membership(acme, bob))
    alice.delete()  # the admin's "delete user", once she is in no team
    page = bob_client.get("/budget/").content.decode()
    row = page[page.index(f'data-override-id="{override.public_id}"'):]
    assert '<td data-label="By">alice</td>' in row[:row.index("</tr>")]
    assert bob_client.get(f"/api/v1/budget/overrides/{override.public_id}/").json()["created_by"] == "alice"


def test_the_overrides_made_before_their_makers_name_was_kept_get_it_from_their_user(acme, alice):
    from datetime import timedelta
    from importlib import import_module

    from django.apps import apps
    from django.utils import timezone

    from budgets.models import Override

    older = Override.objects.create(team=acme, amount=5, expires_at=timezone.now() + timedelta(days=1),
                                    reason="before", created_by=alice)
    by_command = Override.objects.create(team=acme, amount=5, expires_at=timezone.now() + timedelta(days=1),
                                         reason="by a command")
    import_module("budgets.migrations.0005_fill_override_created_by_name").fill(apps, None)
    older.refresh_from_db()
    by_command.refresh_from_db()
    assert (older.created_by_name, by_command.created_by_name) == ("alice", "")


def test_a_token_still_names_its_maker_and_stops_once_their_user_is_deleted(acme, alice, bob, alice_client):
    """However the user went: the admin refuses to delete someone still in a team, but a deletion
    elsewhere (a shell, a script) takes the memberships without the removal that revokes the
    tokens, and a maker removed before removals revoked tokens left theirs working."""
    token, bobs = bobs_token(acme, bob)
    bob.delete()
    assert bobs.get("/api/v1/team/").status_code == 401
    listed = {row["id"]: row for row in alice_client.get("/api/v1/tokens/").json()}
    assert (listed[token.public_id]["created_by"], listed[token.public_id]["active"]) == ("bob", False)
    page = alice_client.get("/team/").content.decode()
    row = page[page.index(f'id="token-{token.public_id}"'):]
    row = row[:row.index("</tr>")]
    assert '<td data-label="Created by">bob</td>' in row and '<span class="badge badge-off">maker deleted</span>' in row


def test_the_tokens_made_before_their_makers_name_was_kept_get_it_from_their_user(acme, alice):
    from importlib import import_module

    from django.apps import apps

    made, _ = token_create(team=acme, name="old", access="read", expires_at=None, by=membership(acme, alice))
    by_command, _ = token_create(team=acme, name="cli", access="read", expires_at=None, by=None)
    ApiToken.objects.update(created_by_name="")
    import_module("pulse_site.teams.migrations.0005_fill_token_created_by_name").fill(apps, None)
    assert dict(ApiToken.objects.values_list("name", "created_by_name")) == {"old": "alice", "cli": ""}


def test_a_removed_member_stops_hearing_from_the_team_at_their_email_address(acme, alice, bob, alice_client):
    from pulse_site.notifications.models import Target
    from pulse_site.notifications.services import target_create

    bobs = target_create(team=acme, name="Bob", kind="email", address="Bob@Example.com", by=None)
    ops = target_create(team=acme, name="Ops", kind="email", address="ops@example.com", by=None)
    alice_client.delete(f"/api/v1/team/members/{bob.pk}/")
    assert dict(Target.objects.values_list("name", "enabled")) == {"Bob": False, "Ops": True}
    texts = [row["text"] for row in alice_client.get("/api/v1/events/?family=notification").json()["results"]]
    assert texts[0] == "Target Bob: disabled changed by alice: bob was removed from the team"
    assert (bobs.pk, ops.pk) == tuple(Target.objects.order_by("name").values_list("pk", flat=True))


# --- tokens that outlived their maker's right to make them (pulse_stale_tokens) ------------------


def run_command(*args: str) -> str:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("pulse_stale_tokens", *args, stdout=out)
    return out.getvalue()


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def outlived(acme, alice, bob, vic, globex, charlie):
    """Tokens made by admins of Acme who then went, each as it was possible before removals and
    demotions revoked tokens (the rows changed directly): bob left, vic was made a member, dave
    was deactivated, erin's user was deleted. Alice's token and an operator's stay good, as does
    Globex's token of charlie, who left Globex."""
    from tests.conftest import make_user

    dave, erin = make_user("dave", email="dave@example.com"), make_user("erin")
    made = {}
    for user in (bob, vic, dave, erin):
        Membership.objects.update_or_create(team=acme, user=user, defaults={"role": Role.ADMIN})
        made[user.username] = token_create(team=acme, name=f"{user.username}'s ci", access="write", expires_at=None,
                                           by=membership(acme, user))
    made["alice"] = token_create(team=acme, name="alice's", access="read", expires_at=None, by=membership(acme, alice))
    made["cli"] = token_create(team=acme, name="cli", access="read", expires_at=None, by=None)
    Membership.objects.create(team=globex, user=alice, role=Role.OWNER)
    made["charlie"] = token_create(team=globex, name="charlie's", access="read", expires_at=None,
                                   by=membership(globex, charlie))
    Membership.objects.filter(user=bob).delete()
    Membership.objects.filter(user=vic).update(role=Role.MEMBER)
    dave.is_active = False
    dave.save(update_fields=["is_active"])
    erin.delete()
    Membership.objects.filter(team=globex, user=charlie).delete()
    for _, secret in (made["bob"], made["vic"], made["charlie"]):
        assert bearer(secret).get("/api/v1/team/").status_code == 200  # what the command is for
    return made


def test_the_stale_tokens_command_lists_each_teams_tokens_whose_maker_may_no_longer_make_them(outlived):
    lines = run_command().splitlines()
    bob, vic, dave, erin, charlie = (outlived[name][0] for name in ("bob", "vic", "dave", "erin", "charlie"))
    assert lines == [
        "Acme (acme):",
        f"  {bob.public_id} 'bob's ci' ({bob.prefix}…, write, made by bob): bob is no longer in the team",
        f"  {vic.public_id} 'vic's ci' ({vic.prefix}…, write, made by vic): vic is now member",
        f"  {dave.public_id} 'dave's ci' ({dave.prefix}…, write, made by dave): dave is deactivated",
        f"  {erin.public_id} 'erin's ci' ({erin.prefix}…, write, made by erin): erin's user is deleted",
        "Globex (globex):",
        f"  {charlie.public_id} 'charlie's' ({charlie.prefix}…, read, made by charlie): charlie is no longer in the team",
        "5 tokens; run again with --revoke to revoke them.",
    ]
    assert not ApiToken.objects.filter(revoked_at__isnull=False).exists()
    assert not Event.objects.filter(kind="token.revoked").exists()


def test_the_stale_tokens_command_revokes_them_as_a_removal_does_once_and_in_the_team_named(outlived):
    lines = run_command("--team", "acme", "--revoke").splitlines()
    assert lines[0] == "Acme (acme):"
    assert lines[1].startswith(f"  revoked {outlived['bob'][0].public_id} 'bob's ci'")
    assert lines[-1] == "Revoked 4 tokens in Acme."
    assert bearer(outlived["bob"][1]).get("/api/v1/team/").status_code == 401
    assert bearer(outlived["vic"][1]).post("/api/v1/jobs/", {"handler": "pulse.noop", "payload": {}},
                                           format="json").status_code == 401
    revoked = dict(Event.objects.filter(kind="token.revoked").values_list("subject", "payload"))
    assert revoked == {
        outlived["bob"][0].public_id: {"name": "bob's ci", "by": "operator", "why": "bob is no longer in the team"},
        outlived["vic"][0].public_id: {"name": "vic's ci", "by": "operator", "why": "vic is now member"},
        outlived["dave"][0].public_id: {"name": "dave's ci", "by": "operator", "why": "dave is deactivated"},
        outlived["erin"][0].public_id: {"name": "erin's ci", "by": "operator", "why": "erin's user is deleted"},
    }
    # Alice's, the operator's and the other team's are left, and a second run finds nothing more.
    for name in ("alice", "cli", "charlie"):
        assert bearer(outlived[name][1]).get("/api/v1/team/").status_code == 200
    assert run_command("--team", "acme", "--revoke") == "No token in Acme outlives its maker's right to make it.\n"
    assert Event.objects.filter(kind="token.revoked").count() == 4


def test_a_token_revoked_by_the_command_stays_revoked_when_its_maker_is_reactivated(outlived):
    from django.contrib.auth import get_user_model

    run_command("--revoke")
    dave = get_user_model().objects.get(username="dave")
    dave.is_active = True
    dave.save(update_fields=["is_active"])
    assert bearer(outlived["dave"][1]).get("/api/v1/team/").status_code == 401
    assert bearer(outlived["charlie"][1]).get("/api/v1/team/").status_code == 401


def test_the_stale_tokens_command_refuses_a_team_that_does_not_exist_and_revokes_nothing(outlived):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No team has the slug 'nope'."):
        run_command("--team", "nope", "--revoke")
    assert not ApiToken.objects.filter(revoked_at__isnull=False).exists()


def test_the_team_page_and_the_api_flag_a_working_token_whose_maker_left_for_its_owners(outlived, alice_client):
    page = alice_client.get("/team/").content.decode()

    def row(name: str) -> str:
        found = page[page.index(f'id="token-{outlived[name][0].public_id}"'):]
        return found[:found.index("</tr>")]

    assert '<span class="badge badge-warn">revoke it: bob is no longer in the team</span>' in row("bob")
    assert '<span class="badge badge-warn">revoke it: vic is now member</span>' in row("vic")
    assert "badge-warn" not in row("alice") + row("cli")
    # A token that no longer works says that instead.
    assert "badge-warn" not in row("dave") and "maker deactivated" in row("dave")
    listed = {row["name"]: row["outlived"] for row in alice_client.get("/api/v1/tokens/").json()}
    assert listed == {"bob's ci": "bob is no longer in the team", "vic's ci": "vic is now member", "dave's ci": None,
                      "erin's ci": None, "alice's": None, "cli": None}
