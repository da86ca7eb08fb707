"""Every route, enumerated from the URL patterns, called by Globex (charlie's session and a Globex
token) with Acme's ids in the path, the query and the body: refused, never a 500, never Acme's
data, and nothing of Acme's changes. A new route is exercised without anyone adding it here; a
route with a parameter this file does not know how to fill fails the test until it is taught."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from budgets.models import BudgetPolicy, HandlerCap, Ledger, Override, PolicyChange, Usage
from budgets.services import budget_override_create, budget_policy_update
from jobs.models import Attempt, Job, TaskLog
from jobs.runner import run_job
from jobs.services import job_submit
from pulse_site.live.models import Event
from pulse_site.notifications.models import HoldTimer, JobWatch, Rule, Target
from pulse_site.notifications.services import rule_create, target_create
from pulse_site.teams.models import ApiToken, Membership
from pulse_site.teams.services import token_create
from schedules.models import Execution, Schedule
from schedules.services import schedule_create, schedule_trigger
from tests.conftest import logged_in, token_client

pytestmark = pytest.mark.django_db

# Routes that are not team-scoped, so "another team's ids" means nothing for them. Each says why.
NOT_TEAM_SCOPED = {
    "login/": "anonymous entry point; its own tests cover lockout and enumeration",
    "logout/": "ends the caller's own session (calling it would log charlie out mid-walk)",
    "api/schema/": "the OpenAPI document is the same for everyone",
    "api/docs/": "Swagger UI, static for everyone",
    "health/": "the load balancer's probe: says only whether the database and the cache answer",
}
# The admin is for staff across all teams by design; charlie is not staff (checked below).
NOT_TEAM_SCOPED_PREFIXES = ("admin/",)

METHODS = ("get", "post", "put", "patch", "delete")
SECRETS = ("Acme", "acme-secret-payload", "Acme secret schedule", "acme secret token", "acme-secret-reason",
           "alice@example.com", "Acme secret target")


@dataclass(frozen=True)
class Route:
    route: str  # "jobs/<str:job_id>/" as written in the patterns, prefixes joined
    params: tuple[str, ...]


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[Route]:
    for entry in patterns:
        text = str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + text)
        elif isinstance(entry, URLPattern):
            route = prefix + text
            yield Route(route, tuple(re.findall(r"<(?:\w+:)?(\w+)>", route)))


def all_routes() -> list[Route]:
    return list(dict.fromkeys(_walk(get_resolver().url_patterns)))


def team_scoped_routes() -> list[Route]:
    return [r for r in all_routes()
            if r.route not in NOT_TEAM_SCOPED and not r.route.startswith(NOT_TEAM_SCOPED_PREFIXES)]


@dataclass
class AcmeWorld:
    ids: dict[str, list[str]]  # path parameter name -> the values to try
    query: str
    body: dict[str, Any]


@pytest.fixture
def acme_world(acme, alice, bob, settings) -> AcmeWorld:
    settings.PULSE_PROGRESS_INTERVAL = 0
    done = job_submit(team=acme, handler="demo.report", payload={"delay": 0, "title": "acme-secret-payload"},
                      source="api").job
    run_job(done.public_id)  # a finished job with attempts, stages and logs
    queued = job_submit(team=acme, handler="pulse.noop", payload={"note": "acme-secret-payload"}, source="api").job
    schedule = schedule_create(team=acme, name="Acme secret schedule", handler="pulse.noop", cron="*/15 * * * *",
                               time_zone="UTC")
    execution = schedule_trigger(schedule=schedule)
    budget_policy_update(team=acme, changes={"daily_limit": "10", "handler_caps": {"pulse.noop": {"daily": "1"}}},
                         by=None)
    override = budget_override_create(team=acme, amount="5", expires_at=timezone.now() + timedelta(days=1),
                                      reason="acme-secret-reason", by=None)
    token, _ = token_create(team=acme, name="acme secret token", access="write", expires_at=None, by=None)
    target = target_create(team=acme, name="Acme secret target", kind=Target.Kind.EMAIL,
                           address="alice@example.com", by=None)
    rule = rule_create(team=acme, target=target, kind=Rule.Kind.values[0], by=None)
    job_ids = [done.public_id, queued.public_id]
    ids = {
        "job_id": job_ids,
        "schedule_id": [schedule.public_id],
        "override_id": [override.public_id],
        "token_id": [token.public_id],
        "target_id": [target.public_id],
        "rule_id": [rule.public_id],
        "user_id": [str(alice.pk), str(bob.pk)],
        # Handlers are the deployment's, not a team's: their pages show the caller's own figures
        # (none for Pulse's own pulse.notify, which no team names).
        "name": ["pulse.noop", "no.such.handler", "pulse.notify"],
        # Every action name either app knows, on both apps' action routes.
        "action": ["cancel", "pause", "resume", "retry", "trigger", "delete"],
    }
    refs = {"job": done.public_id, "job_id": done.public_id, "parent": done.public_id, "parent_id": done.public_id,
            "cursor": done.public_id, "q": done.public_id, "schedule": schedule.public_id,
            "schedule_id": schedule.public_id, "execution": execution.public_id, "override": override.public_id,
            "token": token.public_id, "target": target.public_id, "rule": rule.public_id, "notify": target.public_id, "user": str(alice.pk), "user_id": str(alice.pk), "team": acme.public_id}
    body = {**refs, "ids": job_ids, "handler": "pulse.noop", "payload": {"parent": done.public_id},
            "name": "Mine", "cron": "0 * * * *", "role": "viewer", "action": "cancel", "amount": "1",
            "reason": "x", "next": f"/jobs/{done.public_id}/"}
    return AcmeWorld(ids=ids, query="&".join(f"{k}={v}" for k, v in refs.items()), body=body)


def acme_snapshot(acme) -> dict[str, list[dict[str, Any]]]:
    """Every row of Acme's, in full: the walk must leave all of them exactly as they were."""
    scoped = {
        Job: {"team": acme}, Attempt: {"job__team": acme}, TaskLog: {"job__team": acme},
        Schedule: {"team": acme}, Execution: {"team": acme}, BudgetPolicy: {"team": acme},
        HandlerCap: {"team": acme}, PolicyChange: {"team": acme}, Usage: {"team": acme}, Ledger: {"team": acme},
        Override: {"team": acme}, ApiToken: {"team": acme}, Membership: {"team": acme}, Event: {"team": acme},
        Target: {"team": acme}, Rule: {"team": acme}, JobWatch: {"team": acme}, HoldTimer: {"team": acme},
    }
    return {model.__name__: list(model.objects.filter(**where).order_by("pk").values())
            for model, where in scoped.items()}


def _fill(route: Route, ids: dict[str, list[str]]) -> list[str]:
    unknown = [p for p in route.params if p not in ids]
    assert not unknown, f"{route.route}: teach this test which Acme ids to put in {unknown}"
    paths = ["/" + route.route]
    for param in route.params:
        paths = [re.sub(rf"<(?:\w+:)?{param}>", value, p, count=1) for p in paths for value in ids[param]]
    return [p.lstrip("^").replace("\\Z", "").replace("$", "") for p in paths]


def _query_for(path: str, method: str, world: AcmeWorld, is_api: bool) -> str:
    """Acme's ids under every name a page might read; an API view refuses a parameter it does not
    take (before any lookup), so it gets Acme's ids in just the ones it takes."""
    if not is_api:
        return world.query
    view = getattr(resolve(path).func, "view_class", None)
    query = getattr(view, "queries", {}).get(method.upper())
    taken = set(query().fields) if query else set()
    return "&".join(pair for pair in world.query.split("&") if pair.split("=")[0] in taken)


def _call(client: Any, method: str, path: str, world: AcmeWorld, is_api: bool) -> Any:
    url = f"{path}?{_query_for(path, method, world, is_api)}"
    if method == "get":
        return client.get(url)
    if is_api or method != "post":
        return getattr(client, method)(url, data=json.dumps(world.body), content_type="application/json")
    form = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in world.body.items()}
    return client.post(url, data=form)


def _refusal_ok(response: Any, *, has_ids: bool, is_api: bool, via_token: bool) -> bool:
    status = response.status_code
    if status >= 500:
        return False
    if via_token and not is_api:
        # A token is not a session: dashboard pages send it to the login page before any lookup.
        return status in (403, 404, 405) or (status == 302 and response["Location"].startswith("/login/"))
    if has_ids:
        return status in (403, 404, 405)
    return True  # charlie's own team's list or form; the body is checked for Acme's data below


def test_every_route_refuses_globex_acmes_ids_and_nothing_of_acmes_changes(acme, acme_world, charlie, globex):
    before = acme_snapshot(acme)
    clients = {"charlie's session": logged_in(charlie), "a Globex token": token_client(globex, "write")}
    for client in clients.values():
        client.raise_request_exception = False  # a 500 is listed with the others, not raised
    failures: list[str] = []
    calls = 0
    for route in team_scoped_routes():
        is_api = route.route.startswith("api/")
        has_ids = any(p not in ("action", "name") for p in route.params)
        for path in _fill(route, acme_world.ids):
            for who, client in clients.items():
                for method in METHODS:
                    response = _call(client, method, path, acme_world, is_api)
                    calls += 1
                    text = response.content.decode(errors="replace")
                    leaked = [s for s in SECRETS if s in text]
                    if leaked or not _refusal_ok(response, has_ids=has_ids, is_api=is_api, via_token=who != "charlie's session"):
                        failures.append(f"{who} {method.upper()} {path} -> {response.status_code} leaked={leaked}")
    assert failures == []
    assert acme_snapshot(acme) == before
    # Sanity: the walk really covered the surfaces (a broken walk would pass vacuously).
    assert calls > 500


def test_the_walk_finds_every_surface_and_the_allow_list_names_only_real_routes():
    routes = {r.route for r in all_routes()}
    assert set(NOT_TEAM_SCOPED) <= routes
    for expected in ("jobs/<str:job_id>/<str:action>/", "api/v1/jobs/<str:job_id>/cancel/",
                     "api/v1/schedules/<str:schedule_id>/executions/", "team/members/<int:user_id>/remove/",
                     "api/v1/budget/overrides/<str:override_id>/end/", "api/v1/tokens/<str:token_id>/",
                     "budget/settings/", ""):
        assert expected in routes


def test_the_admin_refuses_a_member_who_is_not_staff(acme_world, charlie, globex):
    client = logged_in(charlie)
    job_id = acme_world.ids["job_id"][0]
    for path in ("/admin/", "/admin/jobs/job/", f"/admin/jobs/job/?q={job_id}"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
