"""A create answers 201 with the new row's URL in Location, where a client reads it back, and the
OpenAPI schema says so."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_api(alice, acme) -> APIClient:
    # (The budget's overrides and the notifications are changed by an owner signed in, never a token.)
    client = APIClient()
    client.force_login(alice)
    return client


def _create(client: APIClient, what: str) -> object:
    if what == "jobs":
        return client.post("/api/v1/jobs/", {"handler": "pulse.noop"}, format="json")
    if what == "schedules":
        return client.post("/api/v1/schedules/", {"name": "Nightly", "handler": "pulse.noop", "cron": "0 3 * * *"},
                           format="json")
    if what == "budget/overrides":
        expires = (timezone.now() + timedelta(days=1)).isoformat()
        return client.post("/api/v1/budget/overrides/", {"amount": "5", "expires_at": expires, "reason": "launch"},
                           format="json")
    if what == "notifications/targets":
        return client.post("/api/v1/notifications/targets/", {"name": "Pager", "kind": "email",
                                                              "address": "pager@example.com"}, format="json")
    if what == "tokens":
        return client.post("/api/v1/tokens/", {"name": "ci", "access": "read"}, format="json")
    if what == "team/members":
        from tests.conftest import make_user

        return client.post("/api/v1/team/members/", {"username": make_user("dora").username, "role": "member"},
                           format="json")
    target = _create(client, "notifications/targets").json()["id"]  # type: ignore[attr-defined]
    return client.post("/api/v1/notifications/rules/", {"target": target, "kind": "held_long", "minutes": 30},
                       format="json")


@pytest.mark.parametrize("what", ["jobs", "schedules", "budget/overrides", "notifications/targets",
                                  "notifications/rules", "tokens", "team/members"])
def test_a_create_answers_201_with_the_new_rows_url_in_location(alice_api, what):
    created = _create(alice_api, what)
    assert created.status_code == 201, created.json()
    row = created.json()
    assert created["Location"] == f"/api/v1/{what}/{row['id']}/"
    read = alice_api.get(created["Location"])
    assert read.status_code == 200 and read.json()["id"] == row["id"]


def test_an_idempotent_repeat_names_no_new_row(alice_api):
    first = alice_api.post("/api/v1/jobs/", {"handler": "pulse.noop"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    again = alice_api.post("/api/v1/jobs/", {"handler": "pulse.noop"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first["Location"] == f"/api/v1/jobs/{first.json()['id']}/"
    assert not again.has_header("Location")


def test_the_schema_documents_location_on_each_create(alice_api):
    schema = alice_api.get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/v1/jobs/", "/api/v1/schedules/", "/api/v1/budget/overrides/",
                 "/api/v1/notifications/targets/", "/api/v1/notifications/rules/", "/api/v1/tokens/",
                 "/api/v1/team/members/"):
        assert schema["paths"][path]["post"]["responses"]["201"]["headers"]["Location"]["schema"] == {
            "type": "string"}, path
