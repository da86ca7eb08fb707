"""Authentication under attack: lockout (dashboard and admin login), no user enumeration, a new
session key at login, a password change that ends every other session and socket, and API token
secrets that never reach a log line."""

from __future__ import annotations

import logging

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from pulse_site.teams.models import ApiToken
from pulse_site.teams.services import token_create
from tests.conftest import PASSWORD, logged_in
from tests.live.conftest import close_code, open_socket, session_headers

NEW_PASSWORD = "another long and unusual passphrase 42"


@pytest.fixture(autouse=True)
def _lockout_after_three(settings):
    settings.AXES_FAILURE_LIMIT = 3


def login(client: Client, username: str, password: str, url: str = "/login/"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR="203.0.113.9")


@pytest.mark.django_db
def test_the_dashboard_login_locks_out_after_repeated_failures_even_with_the_right_password(alice):
    client = Client()
    assert [login(client, "alice", "wrong").status_code for _ in range(3)] == [200, 200, 429]
    locked = login(client, "alice", PASSWORD)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_admin_login_locks_out_too(alice):
    get_user_model().objects.filter(pk=alice.pk).update(is_staff=True, is_superuser=True)
    client = Client()
    assert [login(client, "alice", "wrong", "/admin/login/").status_code for _ in range(3)] == [200, 200, 429]
    assert login(client, "alice", PASSWORD, "/admin/login/").status_code == 429
    assert client.get("/admin/").status_code == 302  # still not in


@pytest.mark.django_db
def test_failures_on_the_admin_count_towards_the_dashboard_lockout(alice):
    client = Client()
    for _ in range(3):
        login(client, "alice", "wrong", "/admin/login/")
    assert login(client, "alice", PASSWORD).status_code == 429


@pytest.mark.django_db
def test_an_unknown_user_and_a_wrong_password_look_the_same(alice):
    unknown = login(Client(), "nobody-here", "wrong")
    wrong = login(Client(), "alice", "wrong")
    assert unknown.status_code == wrong.status_code == 200
    assert unknown.context["form"].non_field_errors() == wrong.context["form"].non_field_errors()
    # The username is echoed back in the form, so compare the page with it taken out.
    assert (unknown.content.decode().replace("nobody-here", "X").replace(str(unknown.context["csrf_token"]), "")
            == wrong.content.decode().replace("alice", "X").replace(str(wrong.context["csrf_token"]), ""))


@pytest.mark.django_db
def test_an_unknown_user_is_locked_out_like_a_real_one(alice):
    client = Client()
    for _ in range(3):
        login(client, "nobody-here", "wrong")
    assert login(client, "nobody-here", "wrong").status_code == 429
    for _ in range(3):
        login(client, "alice", "wrong")
    assert login(client, "alice", "wrong").status_code == 429


@pytest.mark.django_db
def test_logging_in_gives_a_new_session_key(alice, acme):
    client = Client()
    client.get("/login/")
    client.session["probe"] = 1
    session = client.session
    session["probe"] = 1
    session.save()
    before = client.cookies["sessionid"].value
    assert login(client, "alice", PASSWORD).status_code == 302
    assert client.cookies["sessionid"].value != before
    assert client.get("/jobs/").status_code == 200


@pytest.mark.django_db
def test_changing_the_password_keeps_this_session_and_ends_the_others(alice, acme):
    this, other = logged_in(alice), logged_in(alice)
    assert other.get("/jobs/").status_code == 200
    key_before = this.cookies["sessionid"].value
    response = this.post("/account/password/", {"old_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                 "new_password_again": NEW_PASSWORD})
    assert response.status_code == 302
    assert this.cookies["sessionid"].value != key_before
    assert this.get("/jobs/").status_code == 200
    ended = other.get("/jobs/")
    assert ended.status_code == 302 and ended["Location"].startswith("/login/")
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


@pytest.mark.django_db
@pytest.mark.parametrize("fields,error_field", [
    ({"old_password": "wrong", "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD}, "old_password"),
    ({"old_password": PASSWORD, "new_password": "short", "new_password_again": "short"}, "new_password"),
    ({"old_password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": "x"}, "new_password_again"),
])
def test_a_refused_password_change_changes_nothing(alice, acme, fields, error_field):
    client = logged_in(alice)
    response = client.post("/account/password/", fields)
    assert response.status_code == 400
    assert list(response.context["form"].errors) == [error_field]
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


@pytest.mark.django_db(transaction=True)
async def test_changing_the_password_closes_the_users_other_sockets(alice, bob, acme):
    alices = await open_socket(await database_sync_to_async(session_headers)(alice))
    bobs = await open_socket(await database_sync_to_async(session_headers)(bob))
    assert (await alices.receive_json_from(timeout=5))["type"] == "hello"
    assert (await bobs.receive_json_from(timeout=5))["type"] == "hello"

    def change() -> int:
        client = logged_in(alice)
        return client.post("/account/password/", {"old_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                  "new_password_again": NEW_PASSWORD}).status_code

    assert await database_sync_to_async(change)() == 302
    assert await alices.receive_json_from(timeout=5) == {"type": "closed", "reason": "password changed"}
    assert await close_code(alices) == 4403
    await bobs.send_json_to({"type": "ping"})
    assert await bobs.receive_json_from(timeout=5) == {"type": "pong"}
    await bobs.disconnect()


@pytest.mark.django_db
def test_token_secrets_never_reach_a_log_line_and_only_a_hash_is_stored(acme, caplog):
    caplog.set_level(logging.DEBUG)
    token, secret = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    client = Client(raise_request_exception=False)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    client.get("/api/v1/jobs/", **auth)
    client.get("/api/v1/jobs/JB_NOPE/", **auth)  # a 404 is logged by django.request
    client.post("/api/v1/jobs/", data="{not json", content_type="application/json", **auth)
    client.get("/api/v1/jobs/", HTTP_AUTHORIZATION=f"Bearer {secret}x")  # a wrong secret is logged as refused
    # Pulse reads tokens from the Authorization header only: one in the URL is not a credential.
    assert client.get(f"/api/v1/jobs/?token={secret}").status_code == 401
    caplog.records[:] = caplog.records[:-1]  # that request's own URL is the client's leak, not ours
    assert caplog.records, "nothing was logged at all: the capture is broken"
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    assert secret not in logged and secret[6:] not in logged
    stored = repr(list(ApiToken.objects.filter(pk=token.pk).values()))
    assert secret not in stored and secret[6:] not in stored
