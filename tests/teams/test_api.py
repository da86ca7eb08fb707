from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from pulse_site.live.models import Event
from pulse_site.teams.models import ApiToken, Membership
from pulse_site.teams.services import token_create, token_revoke
from tests.conftest import token_client

Role = Membership.Role


def roles(team) -> dict[str, str]:
    return dict(Membership.objects.filter(team=team).values_list("user__username", "role"))


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


# --- Who the caller is -----------------------------------------------------------------------


def test_the_team_endpoint_shows_the_session_users_team_and_role(alice_client, acme):
    response = alice_client.get("/api/v1/team/")
    assert response.status_code == 200
    assert response.json() == {
        "id": acme.public_id, "name": "Acme", "slug": "acme", "time_zone": "UTC", "role": "owner", "access": "write",
        "job_retention_days": None, "execution_retention_days": None, "event_retention_days": None,
        "retention": {"job_days": 30, "execution_days": 90, "event_days": 7}, "retired_at": None, "retired_by": None,
        "notes": [],
    }


def test_a_viewer_is_told_they_may_only_read(vic_client):
    assert vic_client.get("/api/v1/team/").json()["access"] == "read"


def test_a_token_acts_for_its_team_without_a_role(acme, acme_api_read):
    response = acme_api_read.get("/api/v1/team/")
    assert response.status_code == 200
    assert response.json()["id"] == acme.public_id
    assert (response.json()["role"], response.json()["access"]) == (None, "read")


def test_anonymous_callers_get_401_with_a_bearer_challenge(db):
    response = APIClient().get("/api/v1/team/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json()["error"]["code"] == "not_authenticated"


def test_an_unknown_token_gets_401(acme):
    response = bearer("pulse_" + "x" * 43).get("/api/v1/team/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == {"error": {
        "code": "authentication_failed", "message": "The token is invalid, revoked or expired.", "fields": {},
    }}


def test_a_malformed_authorization_header_gets_401(acme):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer two parts")
    assert client.get("/api/v1/team/").status_code == 401


def test_a_revoked_token_gets_401_at_once(acme):
    token, secret = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    client = bearer(secret)
    assert client.get("/api/v1/team/").status_code == 200
    token_revoke(token=token, by=None)
    assert client.get("/api/v1/team/").status_code == 401


def test_an_expired_token_gets_401(acme):
    token, secret = token_create(
        team=acme, name="ci", access="write", expires_at=timezone.now() + timedelta(hours=1), by=None
    )
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert bearer(secret).get("/api/v1/team/").status_code == 401


def test_the_stored_hash_does_not_authenticate(acme):
    token, _ = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    assert bearer(token.secret_hash).get("/api/v1/team/").status_code == 401


def test_a_read_only_token_cannot_write(acme, acme_api_read):
    response = acme_api_read.post("/api/v1/tokens/", {"name": "more", "access": "write"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {"code": "permission_denied", "message": "This token is read-only.", "fields": {}}
    assert ApiToken.objects.filter(team=acme).count() == 1


def test_a_write_token_can_neither_mint_tokens_nor_change_members(acme, bob, acme_api):
    minted = acme_api.post("/api/v1/tokens/", {"name": "more", "access": "write"}, format="json")
    promoted = acme_api.patch(f"/api/v1/team/members/{bob.pk}/", {"role": "admin"}, format="json")
    assert (minted.status_code, promoted.status_code) == (403, 403)
    assert minted.json()["error"]["message"] == "API tokens cannot manage members or tokens."
    assert ApiToken.objects.filter(team=acme).count() == 1
    assert roles(acme)["bob"] == "member"


def test_the_session_api_enforces_csrf(alice, acme):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/v1/tokens/", {"name": "ci"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not ApiToken.objects.filter(team=acme).exists()


def test_a_logged_in_user_without_a_team_is_refused(db):
    from tests.conftest import make_user

    client = Client()
    client.force_login(make_user("drifter"))
    response = client.get("/api/v1/team/")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "You are not a member of a team."


# --- Members ---------------------------------------------------------------------------------


def test_every_member_can_list_the_members(vic_client, alice, bob, vic):
    response = vic_client.get("/api/v1/team/members/")
    assert response.status_code == 200
    assert [(m["id"], m["username"], m["role"]) for m in response.json()] == [
        (alice.pk, "alice", "owner"), (bob.pk, "bob", "member"), (vic.pk, "vic", "viewer"),
    ]


def test_an_owner_adds_changes_and_removes_a_member(alice_client, acme, charlie):
    added = alice_client.post("/api/v1/team/members/", {"username": "charlie", "role": "viewer"},
                              content_type="application/json")
    assert added.status_code == 201
    assert (added.json()["id"], added.json()["role"]) == (charlie.pk, "viewer")

    changed = alice_client.patch(f"/api/v1/team/members/{charlie.pk}/", {"role": "admin"},
                                 content_type="application/json")
    assert (changed.status_code, changed.json()["role"]) == (200, "admin")

    removed = alice_client.delete(f"/api/v1/team/members/{charlie.pk}/")
    assert removed.status_code == 204
    assert "charlie" not in roles(acme)


def test_adding_an_unknown_user_names_the_field(alice_client, acme):
    response = alice_client.post("/api/v1/team/members/", {"username": "nobody", "role": "member"},
                                 content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"username": ["No user is called 'nobody'."]}


def test_an_unknown_role_names_the_field(alice_client, acme, bob):
    response = alice_client.patch(f"/api/v1/team/members/{bob.pk}/", {"role": "boss"},
                                  content_type="application/json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["role"]
    assert roles(acme)["bob"] == "member"


def test_adding_an_existing_member_is_a_conflict(alice_client, acme):
    response = alice_client.post("/api/v1/team/members/", {"username": "bob", "role": "member"},
                                 content_type="application/json")
    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {"username": ["Already a member."]}


def test_the_last_owner_cannot_be_removed(alice_client, acme, alice):
    response = alice_client.delete(f"/api/v1/team/members/{alice.pk}/")
    assert response.status_code == 409
    assert roles(acme)["alice"] == "owner"


def test_a_plain_member_cannot_manage_members(bob_client, acme, vic):
    response = bob_client.patch(f"/api/v1/team/members/{vic.pk}/", {"role": "admin"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Only owners and admins manage members and tokens."
    assert roles(acme)["vic"] == "viewer"


# --- Tokens ----------------------------------------------------------------------------------


def test_creating_a_token_shows_its_secret_once(alice_client, acme):
    expiry = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    created = alice_client.post("/api/v1/tokens/", {"name": "ci", "access": "read", "expires_at": expiry.isoformat()},
                                content_type="application/json")
    assert created.status_code == 201
    body = created.json()
    token = ApiToken.objects.get(public_id=body["id"])
    assert (body["name"], body["access"], body["created_by"], body["active"]) == ("ci", "read", "alice", True)
    assert token.expires_at == expiry
    assert body["secret"].startswith(body["prefix"])

    listed = alice_client.get("/api/v1/tokens/").json()
    assert [t["id"] for t in listed] == [token.public_id]
    assert "secret" not in listed[0]
    assert body["secret"] not in str(listed)
    assert bearer(body["secret"]).get("/api/v1/team/").json()["access"] == "read"


def test_a_malformed_expiry_names_the_field(alice_client, acme):
    response = alice_client.post("/api/v1/tokens/", {"name": "ci", "expires_at": "next tuesday"},
                                 content_type="application/json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["expires_at"]
    assert not ApiToken.objects.filter(team=acme).exists()


def test_revoking_a_token_locks_it_out(alice_client, acme):
    token, secret = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    assert alice_client.delete(f"/api/v1/tokens/{token.public_id}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert bearer(secret).get("/api/v1/team/").status_code == 401


def test_revoking_a_revoked_token_is_a_409_as_the_team_page_offers_no_revoke(alice_client, acme):
    token, _ = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    revoked_at = token_revoke(token=token, by=None).revoked_at

    response = alice_client.delete(f"/api/v1/tokens/{token.public_id}/")
    assert response.status_code == 409
    assert response.json()["error"] == {"code": "token_revoked", "message": "The token “ci” is already revoked.",
                                        "fields": {}}
    assert ApiToken.objects.get(pk=token.pk).revoked_at == revoked_at
    assert Event.objects.filter(kind="token.revoked").count() == 1
    assert f'action="/team/tokens/{token.public_id}/revoke/"' not in alice_client.get("/team/").content.decode()


# --- Refusals leave nothing changed ----------------------------------------------------------


def test_a_viewer_cannot_change_anything(vic_client, acme, bob):
    token, _ = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    before = roles(acme)
    attempts = [
        vic_client.post("/api/v1/team/members/", {"username": "charlie"}, content_type="application/json"),
        vic_client.patch(f"/api/v1/team/members/{bob.pk}/", {"role": "viewer"}, content_type="application/json"),
        vic_client.delete(f"/api/v1/team/members/{bob.pk}/"),
        vic_client.post("/api/v1/tokens/", {"name": "mine", "access": "write"}, content_type="application/json"),
        vic_client.delete(f"/api/v1/tokens/{token.public_id}/"),
    ]
    assert [r.status_code for r in attempts] == [403] * 5
    assert {r.json()["error"]["message"] for r in attempts} == {"Viewers cannot change anything."}
    assert roles(acme) == before
    assert list(ApiToken.objects.filter(team=acme).values_list("pk", "revoked_at")) == [(token.pk, None)]


def test_only_those_who_manage_tokens_list_them(alice_client, bob_client, vic_client, acme_api, acme_api_read, acme):
    """The team page shows them to owners and admins alone; the API said every token's name,
    prefix, maker and last use to members, viewers and tokens."""
    token_create(team=acme, name="deploy bot", access="write", expires_at=None, by=None)
    assert [t["name"] for t in alice_client.get("/api/v1/tokens/").json()] != []
    for client in (bob_client, vic_client, acme_api, acme_api_read):
        response = client.get("/api/v1/tokens/")
        assert response.status_code == 403 and "deploy bot" not in response.content.decode()


def test_one_member_and_one_token_are_read_at_their_own_urls_by_whom_the_lists_show_them(
        alice_client, bob_client, vic_client, acme_api, acme, bob):
    """Their creates' Location names these URLs, which took PATCH and DELETE only."""
    token, _ = token_create(team=acme, name="deploy bot", access="write", expires_at=None, by=None)
    member = alice_client.get(f"/api/v1/team/members/{bob.pk}/")
    assert member.status_code == 200 and member.json() == {
        **member.json(), "id": bob.pk, "username": "bob", "role": "member"}
    assert vic_client.get(f"/api/v1/team/members/{bob.pk}/").json()["username"] == "bob"  # as the list is
    read = alice_client.get(f"/api/v1/tokens/{token.public_id}/")
    assert read.status_code == 200 and (read.json()["id"], read.json()["name"]) == (token.public_id, "deploy bot")
    assert "secret" not in read.json()
    for client in (bob_client, vic_client, acme_api):
        refused = client.get(f"/api/v1/tokens/{token.public_id}/")
        assert refused.status_code == 403 and "deploy bot" not in refused.content.decode()


@pytest.fixture
def charlies_clients(charlie, globex):
    session = Client()
    session.force_login(charlie)
    return {"session": session, "token": token_client(globex, "write")}


@pytest.mark.parametrize("via", ["session", "token"])
def test_charlie_gets_404_for_every_member_and_token_route_with_acmes_ids(charlies_clients, via, acme, alice, bob):
    client = charlies_clients[via]
    acme_token, _ = token_create(team=acme, name="acme ci", access="write", expires_at=None, by=None)
    before = roles(acme)
    kwargs = {"content_type": "application/json"} if via == "session" else {"format": "json"}
    responses = [
        client.patch(f"/api/v1/team/members/{bob.pk}/", {"role": "admin"}, **kwargs),
        client.patch(f"/api/v1/team/members/{alice.pk}/", {"role": "viewer"}, **kwargs),
        client.delete(f"/api/v1/team/members/{bob.pk}/"),
        client.delete(f"/api/v1/tokens/{acme_token.public_id}/"),
        client.get(f"/api/v1/team/members/{bob.pk}/"),
        client.get(f"/api/v1/tokens/{acme_token.public_id}/"),
    ]
    assert [r.status_code for r in responses] == [404] * 6
    assert {r.json()["error"]["code"] for r in responses} == {"not_found"}
    assert roles(acme) == before
    assert ApiToken.objects.get(pk=acme_token.pk).revoked_at is None
    listed_members = client.get("/api/v1/team/members/").json()
    listed_tokens = client.get("/api/v1/tokens/")
    assert [m["username"] for m in listed_members] == ["charlie"]
    if via == "session":  # a token lists no tokens at all
        assert acme_token.public_id not in {t["id"] for t in listed_tokens.json()}
    else:
        assert listed_tokens.status_code == 403
    assert client.get("/api/v1/team/").json()["name"] == "Globex"


# --- OpenAPI ---------------------------------------------------------------------------------


def test_the_schema_is_valid_openapi_for_a_logged_in_user(alice_client):
    response = alice_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert {"/api/v1/team/", "/api/v1/team/members/", "/api/v1/tokens/{token_id}/"} <= set(schema["paths"])
    assert set(schema["components"]["securitySchemes"]) == {"bearerAuth", "cookieAuth"}


def test_a_token_holder_can_read_the_schema(acme_api_read):
    assert acme_api_read.get("/api/schema/").status_code == 200


def test_the_schema_refuses_a_query_parameter_it_does_not_take_by_name(acme_api_read):
    """As every API endpoint does: `?version=2` answered v1's document titled "1 (2)"."""
    for query in ("version=2", "x=1"):
        refused = acme_api_read.get(f"/api/schema/?{query}")
        assert refused.status_code == 400, query
        assert refused.json()["error"]["fields"] == {query.split("=")[0]: ["Unknown query parameter."]}
    assert acme_api_read.get("/api/schema/?format=json").json()["info"]["version"] == "1"


def test_anonymous_callers_get_401_for_the_schema(db):
    response = Client().get("/api/schema/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_the_docs_page_serves_swagger_ui_from_local_static_files(alice_client):
    response = alice_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()


def test_a_token_holder_gets_the_docs_page_and_its_script_not_a_500(acme_api_read):
    """A token is authenticated for the schema, so for the page reading it (a browser sending the
    header): the page's template asked for the teams of a person, and a token is none (500)."""
    response = acme_api_read.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    script = re.search(r'<script src="(/api/docs/\?[^"]*script=[^"]*)"', html).group(1).replace("&amp;", "&")
    assert acme_api_read.get(script).status_code == 200


def test_anonymous_visitors_of_the_docs_page_are_sent_to_log_in(db):
    response = Client().get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/api/docs/"
