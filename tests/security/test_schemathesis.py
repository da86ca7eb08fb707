"""Schemathesis against the API's own OpenAPI schema (/api/schema/): for every operation, generated
requests (valid and invalid) sent through the WSGI app with a team's read-write token never get a
500, every response conforms to the schema (status code, content type, body, documented headers),
and every request the schema says is invalid (a wrong JSON type, a value outside an enum, a missing
field) is refused with a 4xx, never taken as if it were something else.

Bounded and derandomized (the same examples every run), so it is fast and cannot flake; raise
PULSE_SCHEMATHESIS_EXAMPLES to search harder."""

from __future__ import annotations

import contextlib
import os

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobs.services import job_submit
from pulse_site.teams.services import token_create
from schedules.services import schedule_create

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(600)]

EXAMPLES = int(os.environ.get("PULSE_SCHEMATHESIS_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]


@contextlib.contextmanager
def wsgi_app():
    """The real WSGI application, kept from closing the test's database connection after each
    request (what Django's test client does too; its requests connect the handler again)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_every_api_operation_answers_within_its_schema_and_never_500(acme, settings):
    settings.ALLOWED_HOSTS = ["*"]
    _, secret = token_create(team=acme, name="schemathesis", access="write", expires_at=None, by=None)
    auth = {"Authorization": f"Bearer {secret}"}
    # Something to find, so the generated ids sometimes meet real rows' neighbours and lists are not empty.
    job_submit(team=acme, handler="pulse.noop", payload={}, source="api")
    schedule_create(team=acme, name="Nightly", handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")

    served = Client(HTTP_AUTHORIZATION=auth["Authorization"]).get("/api/schema/", {"format": "json"})
    assert served.status_code == 200
    schema = schemathesis.openapi.from_dict(served.json())

    with wsgi_app() as app:
        failures, operations = _run_all(schema, app, auth)
    print(f"\nschemathesis: {operations} operations, up to {EXAMPLES} examples each, {len(failures)} failing")
    assert operations > 30
    assert failures == [], "\n\n".join(failures)


def _run_all(schema, app, auth: dict[str, str]) -> tuple[list[str], int]:
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate])
        @given(case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                              operation.as_strategy(GenerationMode.NEGATIVE)))
        def run(case: schemathesis.Case) -> None:
            response = case.call(app=app, headers=auth)
            # A 429 would stand in for the operation's own answer. The run keeps the production
            # rates (pulse_site.throttling) and stays well under them: about 300 reads and 280
            # writes in its busiest minute of 1,200 and 600; said here if that ever changes.
            assert response.status_code != 429, f"throttled: {response.text}"
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001  (collect every operation's failure, then report them all)
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    return failures, operations
