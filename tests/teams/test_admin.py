"""Staff see every team's rows in the admin; changes with rules behind them go through the
services (revoking a token, changing a role, removing a member), and a token's hash never shows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pulse_site.live.models import Event
from pulse_site.teams.models import ApiToken, Membership
from pulse_site.teams.services import token_create, token_revoke

Role = Membership.Role


@pytest.fixture
def token(acme) -> ApiToken:
    created, _ = token_create(team=acme, name="CI", access="write", expires_at=None, by=None)
    return created


@pytest.mark.parametrize(
    ("url_name", "shows"),
    [
        ("admin:teams_team_changelist", ["Acme", "Globex"]),
        ("admin:teams_membership_changelist", ["alice", "charlie", "Viewer"]),
        ("admin:teams_apitoken_changelist", ["CI", "pulse_"]),
        ("admin:live_event_changelist", ["team.created", "token.created"]),
    ],
    ids=["teams", "memberships", "tokens", "events"],
)
def test_staff_list_every_teams_rows(admin_client, acme, globex, token, url_name, shows):
    response = admin_client.get(reverse(url_name))

    assert response.status_code == 200
    html = response.content.decode()
    assert [text for text in shows if text not in html] == []


def test_a_team_page_lists_its_members_inline(admin_client, acme):
    response = admin_client.get(reverse("admin:teams_team_change", args=[acme.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert ("alice" in html, "bob" in html, "vic" in html) == (True, True, True)


def test_the_token_page_never_shows_the_hash(admin_client, token):
    response = admin_client.get(reverse("admin:teams_apitoken_change", args=[token.pk]))

    assert response.status_code == 200
    assert token.prefix in response.content.decode()
    assert token.secret_hash not in response.content.decode()
    assert "secret_hash" not in response.content.decode()


def test_tokens_cannot_be_added_or_deleted_in_the_admin(admin_client, token):
    assert admin_client.get(reverse("admin:teams_apitoken_add")).status_code == 403
    assert admin_client.get(reverse("admin:teams_apitoken_delete", args=[token.pk])).status_code == 403


def test_the_revoke_action_revokes_through_the_service(admin_client, acme, token):
    other, _ = token_create(team=acme, name="kept", access="read", expires_at=None, by=None)

    response = admin_client.post(
        reverse("admin:teams_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )

    token.refresh_from_db()
    other.refresh_from_db()
    assert response.status_code == 200
    assert token.revoked_at is not None
    assert other.revoked_at is None
    assert list(Event.objects.filter(kind="token.revoked").values_list("subject", flat=True)) == [token.public_id]
    assert "Revoked: 1 token." in response.content.decode()


def test_the_revoke_action_names_a_token_revoked_before_and_revokes_the_others(admin_client, acme, token):
    other, _ = token_create(team=acme, name="kept", access="read", expires_at=None, by=None)
    token_revoke(token=other, by=None)

    response = admin_client.post(reverse("admin:teams_apitoken_changelist"),
                                 {"action": "revoke", "_selected_action": [token.pk, other.pk]}, follow=True)

    page = response.content.decode()
    assert "Revoked: 1 token." in page and f"Kept ({other.prefix}…): The token “kept” is already revoked." in page
    assert list(Event.objects.filter(kind="token.revoked").values_list("subject", flat=True)) == [
        other.public_id, token.public_id]


def test_the_role_action_changes_roles_through_the_service(admin_client, acme, bob):
    membership = Membership.objects.get(team=acme, user=bob)

    admin_client.post(reverse("admin:teams_membership_changelist"),
                      {"action": "make_admin", "_selected_action": [membership.pk]})

    membership.refresh_from_db()
    assert membership.role == Role.ADMIN
    assert Event.objects.filter(kind="member.changed", subject=str(bob.pk)).count() == 1


def test_removing_the_last_owner_is_refused_with_a_message(admin_client, acme, alice, bob):
    owner = Membership.objects.get(team=acme, user=alice)
    member = Membership.objects.get(team=acme, user=bob)

    response = admin_client.post(reverse("admin:teams_membership_changelist"),
                                 {"action": "remove", "_selected_action": [owner.pk, member.pk]}, follow=True)

    html = response.content.decode()
    assert list(Membership.objects.filter(team=acme).values_list("user__username", flat=True).order_by("user__username")) == ["alice", "vic"]
    assert "A team must keep at least one owner." in html
    assert "Removed: 1 membership." in html


def test_events_are_read_only(admin_client, acme):
    event = Event.objects.filter(team=acme).first()

    assert admin_client.get(reverse("admin:live_event_change", args=[event.pk])).status_code == 200
    assert admin_client.get(reverse("admin:live_event_add")).status_code == 403
    assert admin_client.post(reverse("admin:live_event_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert Event.objects.filter(pk=event.pk).exists()


def test_people_who_are_not_staff_cannot_open_the_admin(alice_client):
    response = alice_client.get(reverse("admin:teams_apitoken_changelist"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_a_team_edited_in_the_admin_goes_through_the_team_service(admin_client, acme):
    url = reverse("admin:teams_team_change", args=[acme.pk])
    form = {"name": "Acme Labs", "time_zone": "Europe/Berlin",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    page = admin_client.get(url).content.decode()
    prefix = page.split('name="')[1:]
    for name in {chunk.split('"')[0] for chunk in prefix if chunk.split('"')[0].endswith(("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS"))}:
        form.setdefault(name, "0")
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    acme.refresh_from_db()
    assert (acme.name, acme.time_zone) == ("Acme Labs", "Europe/Berlin")
    changed = Event.objects.get(team=acme, kind="team.changed")
    assert changed.payload["after"] == {"name": "Acme Labs", "time_zone": "Europe/Berlin"}
    assert changed.payload["by"] == "admin admin"  # the operator, by name (it read "operator")


def test_the_teams_events_of_an_admin_action_name_the_operator(admin_client, acme, bob, token):
    """The team's activity read "CI revoked" with nobody behind it: the events' `by` was empty."""
    membership = Membership.objects.get(team=acme, user=bob)
    changelist = reverse("admin:teams_membership_changelist")

    admin_client.post(reverse("admin:teams_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]})
    admin_client.post(changelist, {"action": "make_viewer", "_selected_action": [membership.pk]})
    admin_client.post(changelist, {"action": "remove", "_selected_action": [membership.pk]})

    kinds = ("token.revoked", "member.changed", "member.removed")
    assert [Event.objects.get(kind=kind).payload["by"] for kind in kinds] == ["admin admin"] * 3


def test_teams_are_not_deleted_in_the_admin_whatever_they_hold(admin_client, acme, globex):
    """Django's delete would take a team's rows without its services: running jobs left to their
    workers, tokens without the close of their sockets. It was refused anyway once the team had
    any history (its events, runs and attempts may not be deleted one by one), and let through for
    a team whose history had aged out: so it is offered for none."""
    Event.objects.filter(team=globex).delete()  # a quiet team whose events the retention pruned
    for team in (acme, globex):
        assert admin_client.get(reverse("admin:teams_team_delete", args=[team.pk])).status_code == 403
        assert admin_client.post(reverse("admin:teams_team_delete", args=[team.pk]), {"post": "yes"}).status_code == 403
        page = admin_client.get(reverse("admin:teams_team_change", args=[team.pk])).content.decode()
        assert reverse("admin:teams_team_delete", args=[team.pk]) not in page
    assert set(type(acme).objects.values_list("name", flat=True)) == {"Acme", "Globex"}


def test_a_user_still_in_a_team_is_not_deleted_in_the_admin(admin_client, acme, alice):
    from django.contrib.auth import get_user_model

    page = admin_client.get(reverse("admin:auth_user_delete", args=[alice.pk]))
    assert "Cannot delete user" in page.content.decode()
    admin_client.post(reverse("admin:auth_user_delete", args=[alice.pk]), {"post": "yes"})
    assert get_user_model().objects.filter(pk=alice.pk).exists()
    assert Membership.objects.get(team=acme, user=alice).role == Role.OWNER


def test_a_tokens_page_names_its_maker_and_why_it_stopped_after_their_user_was_deleted(admin_client, acme, bob):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.ADMIN)
    made, _ = token_create(team=acme, name="bob's", access="read", expires_at=None,
                           by=Membership.objects.get(team=acme, user=bob))
    bob.delete()
    page = admin_client.get(reverse("admin:teams_apitoken_change", args=[made.pk])).content.decode()
    assert '<div class="readonly">bob</div>' in page
    assert '<div class="readonly">maker deleted</div>' in page
