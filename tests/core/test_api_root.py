"""GET /api/v1/: where the API's collections, its schema and its docs are, for a client (or a
person with curl) that starts from the root, instead of a 404."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_the_root_lists_every_collection_by_a_url_that_answers(acme, alice_client):
    body = APIClient().get("/api/v1/").json()  # no credentials needed: it holds no team's data
    assert body["version"] == "v1"
    assert body["schema"] == "http://testserver/api/schema/" and body["docs"] == "http://testserver/api/docs/"
    assert set(body["resources"]) == {
        "jobs", "handlers", "queue", "stats", "executor", "schedules", "budget", "budget_usage", "budget_history",
        "budget_changes", "budget_held", "budget_overrides", "team", "members", "tokens", "notification_targets",
        "notification_rules", "events"}
    for name, url in body["resources"].items():
        assert url.startswith("http://testserver/api/v1/") and url.endswith("/"), name
        assert alice_client.get(url).status_code == 200, name  # an owner reads them all


def test_the_root_takes_only_reads_and_a_bad_token_is_still_refused(acme):
    client = APIClient()
    assert client.head("/api/v1/").status_code == 200
    refused = client.post("/api/v1/", {}, format="json")
    assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed"
    client.credentials(HTTP_AUTHORIZATION="Bearer pulse_nothing")
    assert client.get("/api/v1/").status_code == 401


def test_the_root_refuses_a_query_parameter_by_name_as_every_endpoint_does(acme):
    """The README's rule (a misspelt option never looks accepted) held everywhere but here."""
    refused = APIClient().get("/api/v1/?verison=2")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == {"verison": ["Unknown query parameter."]}
    assert APIClient().get("/api/v1/?format=json").status_code == 200
