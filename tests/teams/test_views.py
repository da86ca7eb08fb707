"""The dashboard's login, team switcher and team page, driven through Django's test client."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from pulse_site.live.models import Event
from pulse_site.live.services import event_emit
from pulse_site.teams.middleware import SESSION_TEAM_KEY
from pulse_site.teams.models import ApiToken, Membership
from pulse_site.teams.services import token_create
from tests.conftest import PASSWORD, logged_in, make_user

Role = Membership.Role
LOGIN = "/login/"


def login_post(client: Client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password})


# --- login, logout, lockout -------------------------------------------------------------------


def test_the_login_page_renders_for_anonymous_visitors(db):
    response = Client().get(LOGIN)
    assert response.status_code == 200
    assert b'name="username"' in response.content and b'name="password"' in response.content


@pytest.mark.parametrize("path", ["/", "/team/"])
def test_anonymous_visitors_are_sent_to_the_login_page(db, path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={path}"


def test_the_right_password_logs_in_and_lands_on_the_overview(alice, acme):
    client = Client()
    response = login_post(client, "alice", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(alice.pk)
    assert client.get("/").status_code == 200


def test_the_session_key_rotates_at_login(alice, acme):
    client = Client()
    session = client.session
    session["before_login"] = True
    session.save()
    old_key = session.session_key
    login_post(client, "alice", PASSWORD)
    assert client.session.session_key != old_key
    assert not Session.objects.filter(session_key=old_key).exists()


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(alice):
    wrong_password = login_post(Client(), "alice", "not the password")
    unknown_user = login_post(Client(), "nobody-at-all", "not the password")
    assert wrong_password.status_code == unknown_user.status_code == 200
    errors = [r.context["form"].non_field_errors() for r in (wrong_password, unknown_user)]
    assert errors[0] == errors[1]
    assert "Please enter a correct username and password" in errors[0][0]
    assert b"nobody-at-all" not in unknown_user.content.split(b"<form")[0]


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(alice):
    client = Client()
    answers = [login_post(client, "alice", f"wrong {n}").status_code for n in range(5)]
    assert answers == [200, 200, 200, 200, 429]
    locked = login_post(client, "alice", PASSWORD)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    assert b"Too many failed logins" in locked.content
    assert b"15 minutes" in locked.content
    assert "registration/locked_out.html" in [t.name for t in locked.templates]


def test_logout_is_a_post_that_ends_the_session(alice_client):
    assert alice_client.get("/logout/").status_code == 405
    response = alice_client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert "_auth_user_id" not in alice_client.session
    assert alice_client.get("/").status_code == 302


# --- pages render, the shell ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/team/"])
def test_alices_pages_render(alice_client, path):
    response = alice_client.get(path)
    assert response.status_code == 200
    assert b"Acme" in response.content
    assert b'action="/logout/"' in response.content
    assert b'href="/api/docs/"' in response.content


def test_the_admin_link_is_shown_to_staff_only(alice, acme):
    assert b'href="/admin/"' not in logged_in(alice).get("/").content
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    assert b'href="/admin/"' in logged_in(alice).get("/").content


def test_a_user_in_no_team_is_told_so(db):
    loner = make_user("loner")
    for path in ("/", "/team/"):
        response = logged_in(loner).get(path)
        assert response.status_code == 200
        assert b"You are not in a team yet" in response.content


def test_the_overview_shows_the_latest_fifty_events_newest_first(alice_client, acme):
    for n in range(55):
        event_emit(team=acme, kind="test.tick", subject=f"S{n}", payload={"n": n, "note": "x"})
    response = alice_client.get("/")
    overview = response.context["overview"]
    assert overview.members_count == 3
    assert len(overview.activity) == 50
    newest = Event.objects.filter(team=acme).order_by("-id").first()
    assert overview.activity[0].id == newest.id == overview.last_event_id
    assert overview.activity[0].text == "n: 54, note: x"
    assert f'data-since="{newest.id}"'.encode() in response.content


def test_the_overview_shows_no_other_teams_events(alice_client, acme, globex):
    event_emit(team=globex, kind="secret.globex", subject="G1")
    response = alice_client.get("/")
    assert b"secret.globex" not in response.content
    assert {row.kind for row in response.context["overview"].activity} <= set(
        Event.objects.filter(team=acme).values_list("kind", flat=True)
    )


# --- the team switcher ------------------------------------------------------------------------


def test_the_switcher_is_shown_only_to_people_in_several_teams(alice_client, bob_client, umbrella):
    assert b'action="/team/switch/"' in alice_client.get("/").content
    assert b'action="/team/switch/"' not in bob_client.get("/").content


def test_switching_team_changes_the_team_every_page_shows(alice_client, acme, umbrella):
    assert alice_client.get("/").context["team"] == acme
    response = alice_client.post("/team/switch/", {"team": umbrella.public_id})
    assert response.status_code == 302
    assert alice_client.session[SESSION_TEAM_KEY] == umbrella.public_id
    assert alice_client.get("/team/").context["team"] == umbrella
    alice_client.post("/team/switch/", {"team": acme.public_id})
    assert alice_client.get("/").context["team"] == acme


def test_switching_to_a_team_one_is_not_in_is_404(alice_client, acme, globex):
    for team_id in (globex.public_id, "TM_01J00000000000000000000000", ""):
        assert alice_client.post("/team/switch/", {"team": team_id}).status_code == 404
    assert SESSION_TEAM_KEY not in alice_client.session
    assert alice_client.get("/").context["team"] == acme


# --- members ----------------------------------------------------------------------------------


def test_an_owner_adds_a_member_by_username(alice_client, acme, charlie):
    response = alice_client.post("/team/members/add/", {"username": "charlie", "role": "admin"})
    assert response.status_code == 302
    assert Membership.objects.get(team=acme, user=charlie).role == Role.ADMIN
    assert "charlie joined as admin." in alice_client.get("/team/").content.decode()


def test_adding_an_unknown_user_is_a_form_error(alice_client, acme):
    response = alice_client.post("/team/members/add/", {"username": "ghost", "role": "member"})
    assert response.status_code == 400
    assert response.context["member_form"].errors == {"username": ["No user is called 'ghost'."]}
    assert Membership.objects.filter(team=acme).count() == 3


def test_adding_someone_twice_is_a_form_error(alice_client, acme):
    response = alice_client.post("/team/members/add/", {"username": "bob", "role": "admin"})
    assert response.status_code == 400
    assert response.context["member_form"].errors == {"username": ["Already a member."]}
    assert Membership.objects.get(team=acme, user__username="bob").role == Role.MEMBER


def test_an_owner_changes_a_role_and_removes_a_member(alice_client, acme, bob, vic):
    assert alice_client.post(f"/team/members/{vic.pk}/role/", {"role": "admin"}).status_code == 302
    assert Membership.objects.get(team=acme, user=vic).role == Role.ADMIN
    assert alice_client.post(f"/team/members/{bob.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(team=acme, user=bob).exists()


def test_demoting_the_last_owner_is_refused_with_a_message(alice_client, acme, alice):
    response = alice_client.post(f"/team/members/{alice.pk}/role/", {"role": "member"}, follow=True)
    assert "A team must keep at least one owner." in [str(m) for m in response.context["messages"]]
    assert Membership.objects.get(team=acme, user=alice).role == Role.OWNER


def test_an_admin_cannot_touch_the_owner(acme, alice, bob):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.ADMIN)
    response = logged_in(bob).post(f"/team/members/{alice.pk}/remove/", follow=True)
    assert "Only an owner can grant, change or remove the owner role." in [str(m) for m in response.context["messages"]]
    assert Membership.objects.get(team=acme, user=alice).role == Role.OWNER


@pytest.mark.parametrize("who", ["vic", "bob"])
def test_viewers_and_members_see_no_forms_and_are_refused_with_403(request, acme, alice, vic, who):
    client = logged_in(request.getfixturevalue(who))
    page = client.get("/team/").content
    assert b"/team/members/add/" not in page and b"/remove/" not in page and b"/team/tokens/" not in page
    before = list(Membership.objects.filter(team=acme).values_list("user__username", "role"))
    token, _ = token_create(team=acme, name="ci", access="read", expires_at=None, by=None)
    refused = [
        client.post("/team/members/add/", {"username": "charlie", "role": "owner"}),
        client.post(f"/team/members/{vic.pk}/role/", {"role": "owner"}),
        client.post(f"/team/members/{alice.pk}/remove/"),
        client.post("/team/tokens/new/", {"name": "mine", "access": "write"}),
        client.post(f"/team/tokens/{token.public_id}/revoke/"),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert list(Membership.objects.filter(team=acme).values_list("user__username", "role")) == before
    assert list(ApiToken.objects.filter(team=acme).values_list("name", "revoked_at")) == [("ci", None)]


def test_charlie_gets_404_for_acmes_members_and_tokens_and_nothing_changes(charlie_client, acme, alice, bob):
    token, _ = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    responses = [
        charlie_client.post(f"/team/members/{bob.pk}/role/", {"role": "viewer"}),
        charlie_client.post(f"/team/members/{alice.pk}/remove/"),
        charlie_client.post(f"/team/tokens/{token.public_id}/revoke/"),
        charlie_client.post("/team/switch/", {"team": acme.public_id}),
    ]
    assert [r.status_code for r in responses] == [404] * 4
    assert Membership.objects.get(team=acme, user=bob).role == Role.MEMBER
    assert Membership.objects.filter(team=acme, user=alice).exists()
    token.refresh_from_db()
    assert token.revoked_at is None
    page = charlie_client.get("/team/").content
    assert b"Acme" not in page and token.prefix.encode() not in page


# --- API tokens -------------------------------------------------------------------------------


def test_a_new_tokens_secret_is_shown_once_then_only_its_prefix(alice_client, acme, alice):
    response = alice_client.post("/team/tokens/new/", {"name": "deploy", "access": "write"})
    assert response.status_code == 302
    token = ApiToken.objects.get(team=acme, name="deploy")
    assert (token.access, token.created_by, token.expires_at) == ("write", alice, None)

    first = alice_client.get("/team/")
    secret = first.context["new_token"]["secret"]
    assert secret.startswith(token.prefix)
    assert secret.encode() in first.content
    assert "no-store" in first["Cache-Control"]

    again = alice_client.get("/team/")
    assert secret.encode() not in again.content
    assert again.context["new_token"] is None
    assert token.prefix.encode() in again.content


def test_a_token_with_an_expiry_date_expires_at_midnight_team_time(alice_client, acme):
    alice_client.post("/team/tokens/new/", {"name": "temp", "access": "read", "expires_on": "2999-01-31"})
    token = ApiToken.objects.get(team=acme, name="temp")
    assert token.expires_at.isoformat() == "2999-01-31T00:00:00+00:00"
    assert token.access == "read"


def test_a_past_expiry_date_is_a_form_error(alice_client, acme):
    response = alice_client.post("/team/tokens/new/", {"name": "old", "access": "read", "expires_on": "2001-01-01"})
    assert response.status_code == 400
    assert response.context["token_form"].errors == {"expires_on": ["The expiry must be in the future."]}
    assert not ApiToken.objects.filter(team=acme).exists()


def test_revoking_a_token_marks_it_revoked(alice_client, acme):
    token, _ = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    assert alice_client.post(f"/team/tokens/{token.public_id}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    row = alice_client.get("/team/").content.decode().split(f'id="token-{token.public_id}"')[1].split("</tr>")[0]
    assert "revoked" in row and "/revoke/" not in row


def test_team_changes_are_refused_on_get(alice_client, bob):
    assert alice_client.get("/team/tokens/new/").status_code == 405
    assert alice_client.get(f"/team/members/{bob.pk}/remove/").status_code == 405
