"""Query and form fields a person (or a script) can fill with anything: every route Acme's own
member can GET, with every parameter any page or API view reads set to a hostile value (a NUL, a
lone surrogate, a number past any column, infinity, a date that is none, 5,000 characters, an id
of no row), answers without a 500; a NUL character anywhere in a query or a form is refused by
name before any view runs, and nothing is written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.urls import resolve

from jobs.models import QueuePause
from pulse_site.api import TeamAPIView
from tests.conftest import logged_in, token_client
from tests.security.test_hostile_access import Route, _fill, _query_for, acme_snapshot, acme_world, team_scoped_routes  # noqa: F401

pytestmark = pytest.mark.django_db

PARAMETERS = ("q", "status", "handler", "source", "error_code", "period", "created_after", "created_before",
              "schedule", "cursor", "after", "limit", "name", "stage", "events", "final_only", "from", "kind",
              "minutes", "next", "theme", "insert", "target", "everything", "wait", "timeout", "format",
              "family", "subject", "all")
HOSTILE = ("a\x00b", "\ud800", "9" * 40, "1e400", "2026-13-45T99:99", "x" * 5000, "JB_" + "Z" * 26)


def _query(value: str, names: tuple[str, ...]) -> str:
    encoded = quote(value.encode("utf-8", "surrogatepass"), safe="")
    return "&".join(f"{name}={encoded}" for name in names)


class _EveryName:  # an AcmeWorld whose query names every parameter, for _query_for to pick from
    query = "&".join(f"{name}=x" for name in PARAMETERS)


def _routes(acme: Any, alice: Any) -> Iterator[tuple[Route, bool, Any]]:
    """Each team-scoped route, whether it is the API's, and who calls it: an Acme token the API,
    alice's session the pages; a 500 is answered, not raised."""
    session, token = logged_in(alice), token_client(acme, "write")
    for client in (session, token):
        client.raise_request_exception = False
    for route in team_scoped_routes():
        is_api = route.route.startswith("api/")
        yield route, is_api, token if is_api else session


def _assert_no_500(answers: list[tuple[str, Any]], at_least: int) -> None:
    failures = [f"{call} -> {response.status_code}" for call, response in answers if response.status_code >= 500]
    assert not failures, "\n".join(failures)
    assert len(answers) >= at_least  # the walk really called the routes


def test_no_query_value_makes_any_route_fail(acme, acme_world, alice):  # noqa: F811
    """Pages get every name any page reads; an API view the names it takes (it refuses the others
    by name before reading any: test_hostile_access)."""
    answers = []
    for route, is_api, client in _routes(acme, alice):
        for path in _fill(route, acme_world.ids):
            names = (tuple(pair.split("=")[0] for pair in _query_for(path, "get", _EveryName, True).split("&") if pair)
                     if is_api else PARAMETERS)
            answers += [(f"GET {path} with {value[:20]!r} in {', '.join(names)}",
                         client.get(f"{path}?{_query(value, names)}")) for value in HOSTILE]
    _assert_no_500(answers, at_least=400)


def test_no_path_value_makes_any_route_fail(acme, alice):
    """Every route with a parameter in its path, called with a NUL, a lone surrogate, a huge
    number and 3,000 characters there (an action route also with a real action): 404 or 405 or a
    refusal, never a 500. A token's revoke looked the NUL up in PostgreSQL."""
    answers = []
    for route, _, client in _routes(acme, alice):
        for value in ("a%00b", "%ED%A0%80", "9" * 40, "x" * 3000) if route.params else ():
            values = {param: [value] for param in route.params}
            if "action" in values:
                values["action"] = ["cancel", value]
            answers += [(f"{method.upper()} {path[:80]}", getattr(client, method)(path))
                        for path in _fill(route, values) for method in ("get", "post", "delete")]
    _assert_no_500(answers, at_least=300)


def test_every_api_write_refuses_a_body_field_it_does_not_take_by_name_and_nothing_changes(acme, acme_world, alice):  # noqa: F811
    """Every write method of every API route, called by Acme's owner on Acme's own ids with a field
    no endpoint takes. An action that takes no body used to drop one: a retry sent a new payload and
    priority answered 200 and ran the job as it was; a schedule's trigger sent a payload ran its own."""
    client = logged_in(alice)
    client.raise_request_exception = False
    before = acme_snapshot(acme)
    failures, calls = [], 0
    for route in team_scoped_routes():
        for path in _fill(route, acme_world.ids) if route.route.startswith("api/") else ():
            view = getattr(resolve(path).func, "view_class", None)
            for method in ("post", "put", "patch", "delete"):
                if not (isinstance(view, type) and issubclass(view, TeamAPIView) and hasattr(view, method)):
                    continue
                response = getattr(client, method)(path, data=json.dumps({"unasked": 1}), content_type="application/json")
                calls += 1
                if response.status_code != 400 or "unasked" not in response.json()["error"]["fields"]:
                    failures.append(f"{method.upper()} {path} -> {response.status_code} {response.content[:120]!r}")
    assert failures == []
    assert calls >= 40  # the walk really called the routes
    assert acme_snapshot(acme) == before


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
    assert "That link to a page of schedules is not one this list gave" in response.content.decode()
    response = alice_client.get("/jobs/?cursor=JB_nope")
    assert "cursor: Not a cursor of this list: pass the next_cursor a page of it gave." in response.content.decode()
