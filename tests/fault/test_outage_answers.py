"""What a client sees while the database is unreachable: the API answers 503 `database_unavailable`
in the error shape with Retry-After, a page answers 503 with Retry-After, never a 500. In process,
on both databases: the connection is pointed at a database that cannot be reached (a closed port,
an SQLite file in a directory that does not exist), so the failure is the driver's own."""

from __future__ import annotations


import jsonschema
import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from rest_framework.test import APIClient

from jobs.models import Job
from pulse_site.outage import is_database_outage
from pulse_site.teams.models import Team
from pulse_site.teams.services import token_create
from tests.fault.proxy import database_away

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_api_answers_503_database_unavailable_with_retry_after(acme):
    _, secret = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    with database_away():
        listed = client.get("/api/v1/jobs/")
        submitted = client.post("/api/v1/jobs/", {"handler": "pulse.noop", "payload": {}}, format="json")
    for response in (listed, submitted):
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert response.json() == {"error": {"code": "database_unavailable", "message":
                                             "The database is unavailable for a moment; try again in 5 seconds.",
                                             "fields": {}}}
    assert not Job.objects.exists()  # nothing half-written


def test_the_schema_documents_the_503_of_every_operation_and_the_answer_matches_it(acme):
    """A client generated from /api/schema/ knows every operation may answer 503 with Retry-After,
    and the body an outage gives is the documented one."""
    _, secret = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operations = [(path, method, operation) for path, item in schema["paths"].items()
                  for method, operation in item.items() if method in {"get", "post", "put", "patch", "delete"}]
    assert len(operations) > 30
    undocumented = [f"{method.upper()} {path}" for path, method, operation in operations
                    if "503" not in operation["responses"]]
    assert undocumented == []
    documented = schema["paths"]["/api/v1/jobs/"]["post"]["responses"]["503"]
    assert "Retry-After" in documented["headers"]
    with database_away():
        answer = client.post("/api/v1/jobs/", {"handler": "pulse.noop", "payload": {}}, format="json")
    assert answer.status_code == 503
    body_schema = {**documented["content"]["application/json"]["schema"], "components": schema["components"]}
    jsonschema.validate(answer.json(), body_schema)


def test_a_page_answers_503_with_retry_after_not_the_500_page(alice, acme):
    browser = Client(raise_request_exception=False)
    browser.force_login(alice)
    with database_away():
        response = browser.get("/jobs/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"database is unavailable" in response.content


def test_a_refused_statement_is_not_taken_for_an_outage(acme):
    with pytest.raises(IntegrityError) as refused:
        with transaction.atomic():
            Team.objects.create(name="Acme again", slug=acme.slug)
    assert not is_database_outage(refused.value)
