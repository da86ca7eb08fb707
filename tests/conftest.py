"""The fixed cast: alice owns Acme (and Umbrella), bob is a member of Acme, vic is Acme's viewer,
charlie owns Globex and belongs to nothing of Acme's. Tests read as sentences about them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.test import APIClient

from jobs.handlers.registry import Handler, find_handler, handler, restore, unregister
from pulse_site.teams.models import Membership, Team
from pulse_site.teams.services import membership_add, team_create, token_create
from tests.processes import processes_for_test

PASSWORD = "correct horse battery staple"
Role = Membership.Role


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_worker_count():
    """Each test counts the live workers of its own database (jobs.dispatch keeps the count 5 s)."""
    from jobs import dispatch

    dispatch._capacity.clear()
    yield
    dispatch._capacity.clear()


@pytest.fixture(autouse=True)
def _own_api_rate_counts(monkeypatch):
    """Each test counts its own API calls against the production rates (pulse_site.throttling):
    a user's id comes back after a rolled-back test, and tests frozen at the same moment share one
    window, so calls counted in earlier tests (or an earlier run, in Redis) would spend this one's.
    The rates stay the production defaults; no test comes near them by accident."""
    from uuid import uuid4

    from pulse_site import throttling

    monkeypatch.setattr(throttling, "KEY_PREFIX", f"api_rate_test_{uuid4().hex}")


# Longer than a test that spends in a budget window and reads it back takes on a loaded machine.
BUDGET_DAY_MARGIN = timedelta(minutes=2)


@pytest.fixture(autouse=True)
def _one_budget_day(request):
    """Budget windows (day, week and month, in UTC, the teams' default zone) turn at midnight by
    the database's clock on PostgreSQL, which time_machine cannot hold, and by the workers' and
    browsers' in the tests that start them: a test that spends and then expects the spend to hold
    jobs back, or to show as today's, would meet a fresh window if it ran across midnight (seen by
    placing the clock at 23:59:59.8). A test of the database started in the last
    BUDGET_DAY_MARGIN of a day waits for the next one; the wait is measured, not guessed. (The
    others have no budget, and some, as the bench's smoke run, no time to spare under their
    timeout.)"""
    if not (request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)):
        return
    midnight = (datetime.now(UTC) + BUDGET_DAY_MARGIN).replace(hour=0, minute=0, second=0, microsecond=0)
    while (left := (midnight - datetime.now(UTC)).total_seconds()) >= 0:
        time.sleep(min(left + 0.001, 1.0))


def make_user(username: str, **extra):
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)


@pytest.fixture
def alice(db):
    return make_user("alice", email="alice@example.com")


@pytest.fixture
def bob(db):
    return make_user("bob", email="bob@example.com")


@pytest.fixture
def vic(db):
    return make_user("vic", email="vic@example.com")


@pytest.fixture
def charlie(db):
    return make_user("charlie", email="charlie@example.com")


@pytest.fixture
def acme(alice, bob, vic) -> Team:
    team = team_create(name="Acme", owner=alice)
    membership_add(team=team, user=bob, role=Role.MEMBER, by=None)
    membership_add(team=team, user=vic, role=Role.VIEWER, by=None)
    return team


@pytest.fixture
def umbrella(alice) -> Team:
    return team_create(name="Umbrella", owner=alice)


@pytest.fixture
def globex(charlie) -> Team:
    return team_create(name="Globex", owner=charlie)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(alice, acme) -> Client:
    return logged_in(alice)


@pytest.fixture
def bob_client(bob, acme) -> Client:
    return logged_in(bob)


@pytest.fixture
def vic_client(vic, acme) -> Client:
    return logged_in(vic)


@pytest.fixture
def charlie_client(charlie, globex) -> Client:
    return logged_in(charlie)


def staff_client(username: str, *codenames: str) -> Client:
    """A staff user with just these permissions (codenames), signed in."""
    user = make_user(username, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def pages_from(client, url: str, cursor: str | None, field: str = "id") -> list:
    """`field` of every row of the API list at `url` (a query string included) from `cursor` on,
    page after page to the end."""
    seen = []
    while cursor is not None:
        page = client.get(f"{url}&cursor={cursor}")
        assert page.status_code == 200, page.json()
        seen += [row[field] for row in page.json()["results"]]
        cursor = page.json()["next_cursor"]
    return seen


def token_client(team: Team, access: str = "write") -> APIClient:
    _, secret = token_create(team=team, name=f"{access} token", access=access, expires_at=None, by=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def acme_api(acme) -> APIClient:
    return token_client(acme, "write")


@pytest.fixture
def acme_api_read(acme) -> APIClient:
    return token_client(acme, "read")


@pytest.fixture
def globex_api(globex) -> APIClient:
    return token_client(globex, "write")


@pytest.fixture
def temp_handler():
    """Register handlers for one test and, afterwards, put back what was registered under their
    names before (nothing, a shipped handler, a cluster's or a fixture's)."""
    replaced: dict[str, Handler | None] = {}

    def register(name: str, **options):
        options.setdefault("title", name)
        options.setdefault("cost", "0")

        def wrap(func):
            replaced.setdefault(name, find_handler(name))
            unregister(name)  # a temporary handler replaces on purpose what has its name
            return handler(name, **options)(func)

        return wrap

    yield register
    for name, before in replaced.items():
        unregister(name)
        if before is not None:
            restore(before)


@pytest.fixture
def processes(settings, monkeypatch, tmp_path):
    """Real qcluster / pulse_ticker processes on the test database and a queue of the test's own
    (tests/processes.py); whatever is still running at the end is stopped. A failed test's report
    ends with the last lines each of them wrote."""
    from django.db import connection

    yield from processes_for_test(settings, monkeypatch, connection, tmp_path / "processes")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    procs = getattr(item, "funcargs", {}).get("processes")
    if report.failed and procs is not None and procs.log_files:
        report.sections.append(("Output of the test's processes", procs.log_tails()))
    return report
