"""Query and form fields a person (or a script) can fill with anything: every route Acme's own
member can GET, with every parameter any page or API view reads set to a hostile value, answers
without a 500; a NUL character anywhere in a query or a form is refused by name before any view
runs, and nothing is written."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from jobs.models import QueuePause
from tests.conftest import logged_in, token_client
from tests.security.test_hostile_access import _fill, _query_for, acme_world, team_scoped_routes  # noqa: F401

pytestmark = pytest.mark.django_db

PARAMETERS = ("q", "status", "handler", "source", "error_code", "period", "created_after", "created_before",
              "schedule", "cursor", "after", "limit", "name", "stage", "events", "final_only", "from", "kind",
              "minutes", "next", "theme", "insert", "target", "everything", "wait", "timeout", "format")
HOSTILE = ("a\x00b", "\ud800", "'\"<>;--", "9" * 40, "-1", "1e400", "2026-13-45T99:99", "x" * 5000, "JB_" + "Z" * 26)


def _query(value: str, names: tuple[str, ...]) -> str:
    encoded = quote(value.encode("utf-8", "surrogatepass"), safe="")
    return "&".join(f"{name}={encoded}" for name in names)


class _EveryName:  # an AcmeWorld whose query names every parameter, for _query_for to pick from
    query = "&".join(f"{name}=x" for name in PARAMETERS)


def test_no_query_value_makes_any_route_fail(acme, acme_world, alice):  # noqa: F811
    """Pages get every name any page reads; an API view the names it takes (it refuses the others
    by name before reading any: test_hostile_access)."""
    session, token = logged_in(alice), token_client(acme, "write")
    failures: list[str] = []
    calls = 0
    for route in team_scoped_routes():
        is_api = route.route.startswith("api/")
        client = token if is_api else session
        client.raise_request_exception = False
        for path in _fill(route, acme_world.ids):
            names = (tuple(pair.split("=")[0] for pair in _query_for(path, "get", _EveryName, True).split("&") if pair)
                     if is_api else PARAMETERS)
            for value in HOSTILE:
                response = client.get(f"{path}?{_query(value, names)}")
                calls += 1
                if response.status_code >= 500:
                    failures.append(f"GET {path} with {value[:20]!r} in {', '.join(names)} -> {response.status_code}")
    assert not failures, "\n".join(failures)
    assert calls > 400


def test_no_path_value_makes_any_route_fail(acme, alice):
    """Every route with a parameter in its path, called with a NUL, a lone surrogate, a huge
    number and 3,000 characters there (an action route also with a real action): 404 or 405 or a
    refusal, never a 500. A token's revoke looked the NUL up in PostgreSQL."""
    session, token = logged_in(alice), token_client(acme, "write")
    failures: list[str] = []
    calls = 0
    for route in team_scoped_routes():
        if not route.params:
            continue
        client = token if route.route.startswith("api/") else session
        client.raise_request_exception = False
        for value in ("a%00b", "%ED%A0%80", "9" * 40, "x" * 3000):
            values = {param: [value] for param in route.params}
            if "action" in values:
                values["action"] = ["cancel", value]
            for path in _fill(route, values):
                for method in ("get", "post", "delete"):
                    response = getattr(client, method)(path)
                    calls += 1
                    if response.status_code >= 500:
                        failures.append(f"{method.upper()} {path[:80]} -> {response.status_code}")
    assert not failures, "\n".join(failures)
    assert calls > 300


def test_a_nul_in_a_form_field_is_refused_by_name_and_nothing_is_written(alice_client, acme):
    # The pause's reason went straight to an INSERT: PostgreSQL refused it with a 500.
    response = alice_client.post("/queue/pause/", data="reason=deploy%00ing", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "<code>reason</code>: NUL characters are not allowed." in response.content.decode()
    assert not QueuePause.objects.exists()
    # The same reason without the NUL pauses the queue.
    assert alice_client.post("/queue/pause/", data={"reason": "deploying"}).status_code == 302
    assert QueuePause.objects.filter(team=acme, reason="deploying").exists()


def test_a_nul_in_a_page_query_is_refused_by_name(alice_client, acme):
    response = alice_client.get("/jobs/?cursor=JB_%00&q=fine")
    assert response.status_code == 400
    assert "<code>cursor</code>: NUL characters are not allowed." in response.content.decode()


def test_a_nul_in_an_api_query_is_refused_in_the_api_error_shape(acme_api):
    response = acme_api.get("/api/v1/schedules/?name=a%00b")
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "validation_error", "message": "name: NUL characters are not allowed.",
                                        "fields": {"name": ["NUL characters are not allowed."]}}


def test_the_admin_search_with_a_nul_is_refused_not_a_500(admin_client):
    admin_client.raise_request_exception = False
    response = admin_client.get("/admin/jobs/job/?q=a%00b")
    assert response.status_code == 400


def test_a_cursor_that_is_no_id_is_answered_with_the_first_page(alice_client, acme):
    response = alice_client.get("/schedules/?cursor=../../etc/passwd")
    assert response.status_code == 200
    assert "That page of schedules is gone" in response.content.decode()
    response = alice_client.get("/jobs/?cursor=JB_nope")
    assert "cursor: Not a job of this team." in response.content.decode()
