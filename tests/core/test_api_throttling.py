"""API request throttling (pulse_site.throttling): each credential (an API token, a signed-in
user) may make so many reads and so many writes per window; one more is a 429 `throttled` with
Retry-After, in the API's error shape, and nothing is done. Not the budget's calls_per_minute,
which holds submitted jobs instead of refusing calls."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from redis.exceptions import ConnectionError as RedisConnectionError

from jobs.models import Job
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

# Ten seconds before a minute turns: a minute's window ends then.
T0 = datetime(2026, 3, 10, 12, 30, 50, tzinfo=UTC)
READ = "/api/v1/team/"
WRITE = "/api/v1/jobs/preview/"
NOOP = {"handler": "pulse.noop", "payload": {}}


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(T0, tick=False)
    return time_machine


@pytest.fixture
def low_rates(settings):
    settings.PULSE_API_READ_RATE = "3/min"
    settings.PULSE_API_WRITE_RATE = "2/min"


def read(client):
    return client.get(READ)


def write(client):
    return client.post(WRITE, NOOP, format="json") if hasattr(client, "credentials") else \
        client.post(WRITE, NOOP, content_type="application/json")


def test_a_token_over_its_read_rate_gets_a_429_with_retry_after(acme_api, low_rates, frozen):
    assert [read(acme_api).status_code for _ in range(3)] == [200, 200, 200]

    response = read(acme_api)

    assert response.status_code == 429
    assert response["Retry-After"] == "10"
    assert response.json() == {"error": {
        "code": "throttled",
        "message": "This token is over its rate of 3 reads a minute; try again in 10 seconds.",
        "fields": {},
    }}


def test_a_throttled_write_does_nothing(acme_api, low_rates, frozen):
    assert [acme_api.post("/api/v1/jobs/", NOOP, format="json").status_code for _ in range(2)] == [201, 201]

    response = acme_api.post("/api/v1/jobs/", NOOP, format="json")

    assert response.status_code == 429
    assert response.json()["error"]["message"] == \
        "This token is over its rate of 2 writes a minute; try again in 10 seconds."
    assert Job.objects.count() == 2


def test_a_throttled_token_does_not_throttle_another_token_of_its_team_nor_another_team(
        acme, globex, low_rates, frozen):
    first, second, other_team = token_client(acme), token_client(acme), token_client(globex)
    for _ in range(3):
        read(first)
    assert read(first).status_code == 429

    assert [read(second).status_code for _ in range(3)] == [200, 200, 200]
    assert [read(other_team).status_code for _ in range(3)] == [200, 200, 200]
    assert read(second).status_code == 429


def test_a_signed_in_user_is_counted_apart_from_the_teams_tokens_and_other_users(
        alice_client, bob_client, acme_api, low_rates, frozen):
    for _ in range(3):
        read(acme_api)
    assert read(acme_api).status_code == 429

    assert [read(alice_client).status_code for _ in range(3)] == [200, 200, 200]
    response = read(alice_client)
    assert response.status_code == 429
    assert response.json()["error"]["message"] == \
        "You are over your rate of 3 reads a minute; try again in 10 seconds."
    assert read(bob_client).status_code == 200


def test_reads_and_writes_are_counted_apart(acme_api, low_rates, frozen):
    assert [write(acme_api).status_code for _ in range(3)] == [200, 200, 429]
    assert [read(acme_api).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert acme_api.options(READ).status_code == 429  # OPTIONS and HEAD read
    assert acme_api.head(READ).status_code == 429
    assert acme_api.delete("/api/v1/jobs/JB_nope/").status_code == 429  # writes are spent too


def test_a_new_window_lets_calls_through_again(acme_api, low_rates, frozen):
    for _ in range(3):
        read(acme_api)
    assert read(acme_api).status_code == 429

    frozen.move_to(T0 + timedelta(seconds=9), tick=False)
    response = read(acme_api)
    assert (response.status_code, response["Retry-After"]) == (429, "1")
    assert response.json()["error"]["message"].endswith("try again in 1 second.")

    frozen.move_to(T0 + timedelta(seconds=10), tick=False)
    assert [read(acme_api).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert read(acme_api)["Retry-After"] == "60"


def test_an_hourly_rate_waits_for_the_hour_to_turn(acme_api, settings, frozen):
    settings.PULSE_API_READ_RATE = "1/hour"
    read(acme_api)

    response = read(acme_api)

    # 12:30:50 → 13:00:00 is 1,750 s.
    assert response["Retry-After"] == "1750"
    assert response.json()["error"]["message"] == \
        "This token is over its rate of 1 read an hour; try again in 1,750 seconds."


@pytest.mark.parametrize(("rate", "kind", "words"), [
    ("1/s", "read", "1 read a second"),
    ("1200/min", "read", "1,200 reads a minute"),
    ("5000/hour", "write", "5,000 writes an hour"),
    ("2/d", "write", "2 writes a day"),
])
def test_a_rate_is_said_in_words(rate, kind, words):
    from pulse_site.env import rate_parse
    from pulse_site.throttling import rate_in_words

    assert rate_in_words(rate_parse("PULSE_API_READ_RATE", rate), kind) == words


@pytest.mark.parametrize("setting", ["PULSE_API_READ_RATE", "PULSE_API_AUTH_FAILURE_RATE"])
def test_a_bad_rate_set_in_the_settings_is_named_as_the_environments_would_be(acme_api, settings, setting):
    """Not read by a unit's first letter as DRF reads it (ten a minute): the settings module is
    no way around env_rate's check."""
    setattr(settings, setting, "10/mxyz")
    with pytest.raises(ImproperlyConfigured, match=rf"^{setting}='10/mxyz' is not valid: expected a number of calls"):
        read(acme_api)


def test_off_switches_throttling_off(acme_api, settings, frozen):
    settings.PULSE_API_READ_RATE = None
    settings.PULSE_API_WRITE_RATE = None

    assert {read(acme_api).status_code for _ in range(50)} == {200}
    assert {write(acme_api).status_code for _ in range(50)} == {200}


def test_unauthenticated_calls_are_refused_as_before_not_counted(client, low_rates, frozen):
    assert {client.get(READ).status_code for _ in range(5)} == {401}


def test_a_cache_that_cannot_be_reached_lets_the_call_through_and_says_so(acme_api, low_rates, monkeypatch, caplog):
    from django.core.cache import cache

    def down(*args, **kwargs):
        raise RedisConnectionError("Connection refused.")

    monkeypatch.setattr(cache, "add", down)
    monkeypatch.setattr(cache, "incr", down)
    with caplog.at_level(logging.WARNING, logger="pulse.throttling"):
        assert [read(acme_api).status_code for _ in range(5)] == [200] * 5

    assert "API rate not counted" in caplog.text


def test_the_schema_documents_the_429_of_every_operation(alice_client):
    schema = alice_client.get("/api/schema/", {"format": "json"}).json()

    missing = [f"{method} {path}" for path, operations in schema["paths"].items()
               for method, operation in operations.items() if "429" not in operation["responses"]]
    assert missing == []
    answer = schema["paths"]["/api/v1/jobs/"]["post"]["responses"]["429"]
    assert answer["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_calls_made_at_once_are_each_counted(acme, settings, frozen):
    """DRF's own throttle reads, appends and writes back a list, so calls at once overwrite each
    other's count; this one's add-and-incr is atomic (in Redis, and in the local-memory cache)."""
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from rest_framework.exceptions import Throttled

    from pulse_site.teams.models import ApiToken
    from pulse_site.throttling import ReadRateThrottle

    settings.PULSE_API_READ_RATE = "10/hour"
    call = SimpleNamespace(method="GET", auth=ApiToken(team=acme, public_id="TK_AT_ONCE"), user=None)

    def allowed(_: int) -> bool:
        try:
            return ReadRateThrottle().allow_request(call, view=None)  # a throttle per call, as DRF makes them
        except Throttled:
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(allowed, range(40)))

    assert answers.count(True) == 10


def test_every_answer_says_how_many_calls_are_left_and_when_the_window_turns(acme_api, low_rates, frozen):
    """A client paces itself by these (RateLimit-Limit, -Remaining, -Reset: seconds) instead of
    running into the 429."""
    said = [(r["RateLimit-Limit"], r["RateLimit-Remaining"], r["RateLimit-Reset"], r.status_code)
            for r in (read(acme_api) for _ in range(4))]
    assert said == [("3", "2", "10", 200), ("3", "1", "10", 200), ("3", "0", "10", 200), ("3", "0", "10", 429)]
    written = write(acme_api)
    assert (written["RateLimit-Limit"], written["RateLimit-Remaining"]) == ("2", "1")


def test_no_rate_no_rate_headers(acme_api, settings):
    settings.PULSE_API_READ_RATE = None
    assert "RateLimit-Limit" not in read(acme_api)


BAD = {"HTTP_AUTHORIZATION": "Bearer pulse_not_a_token"}


def test_calls_with_a_bad_token_from_one_address_are_refused_after_the_failure_rate(
        acme, client, settings, frozen):
    """Guessing tokens is bounded per address: past PULSE_API_AUTH_FAILURE_RATE failures, every
    bearer call from that address is a 429 until the window turns (a right guess included, or the
    limit would bound nothing), not looked up at all; another address is not held back."""
    settings.PULSE_API_AUTH_FAILURE_RATE = "3/min"
    good = token_client(acme)
    assert [client.get(READ, **BAD).status_code for _ in range(3)] == [401, 401, 401]

    refused = client.get(READ, **BAD)
    assert refused.status_code == 429 and refused["Retry-After"] == "10"
    assert refused.json()["error"] == {"code": "throttled", "fields": {}, "message":
        "Too many calls with an invalid token from this address (3 failures a minute); try again in 10 seconds."}
    assert good.get(READ).status_code == 429
    assert good.get(READ, REMOTE_ADDR="10.0.0.7").status_code == 200
    assert client.get(READ, REMOTE_ADDR="10.0.0.7", **BAD).status_code == 401

    frozen.move_to(T0 + timedelta(seconds=10), tick=False)
    assert good.get(READ).status_code == 200


def test_a_revoked_or_expired_token_is_a_mistake_not_a_guess_and_is_not_counted(acme, client, settings, frozen):
    """A forgotten cron job calling with its revoked token must not lock every client behind its
    address out: only secrets that are no token's count."""
    from pulse_site.teams.services import token_create, token_revoke

    settings.PULSE_API_AUTH_FAILURE_RATE = "2/min"
    revoked, revoked_secret = token_create(team=acme, name="old", access="read", expires_at=None, by=None)
    token_revoke(token=revoked, by=None)
    _, expired_secret = token_create(team=acme, name="gone", access="read", expires_at=T0 + timedelta(seconds=1), by=None)
    frozen.move_to(T0 + timedelta(seconds=2), tick=False)
    for secret in (revoked_secret, expired_secret) * 3:
        assert client.get(READ, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    assert token_client(acme).get(READ).status_code == 200


@pytest.mark.parametrize(("first", "second", "shared"), [
    ("2001:db8:1:2::10", "2001:db8:1:2:ffff::1", True),  # one /64: one client's
    ("2001:db8:1:2::10", "2001:db8:1:3::10", False),
    ("::ffff:10.0.0.7", "10.0.0.7", True),  # an IPv4-mapped address is its IPv4 one
])
def test_an_ipv6_client_is_counted_by_its_64(acme, client, settings, frozen, first, second, shared):
    settings.PULSE_API_AUTH_FAILURE_RATE = "2/min"
    for _ in range(2):
        assert client.get(READ, REMOTE_ADDR=first, **BAD).status_code == 401
    assert client.get(READ, REMOTE_ADDR=second, **BAD).status_code == (429 if shared else 401)


def test_an_answer_given_after_its_window_turned_says_the_new_window(acme_api, low_rates, frozen):
    """A call that waits (for a job's end) is counted when it starts and answered later: its
    headers speak of the window it is answered in."""
    from pulse_site.throttling import RateHeadersMiddleware

    read(acme_api)
    request = read(acme_api).wsgi_request
    response = RateHeadersMiddleware(lambda _: HttpResponse())(request)
    assert (response["RateLimit-Remaining"], response["RateLimit-Reset"]) == ("1", "10")
    frozen.move_to(T0 + timedelta(seconds=15), tick=False)
    response = RateHeadersMiddleware(lambda _: HttpResponse())(request)
    assert (response["RateLimit-Remaining"], response["RateLimit-Reset"]) == ("3", "55")


def test_a_bad_rate_set_in_the_settings_stops_manage_py_check_naming_it(settings):
    """`manage.py check` (and every command that checks first: migrate, qcluster, the ticker) says
    so before the first API call does."""
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.PULSE_API_WRITE_RATE = "5/fortnight"
    with pytest.raises(SystemCheckError, match=r"PULSE_API_WRITE_RATE='5/fortnight' is not valid"):
        call_command("check")
    for good in ("5/hour", None, "off"):
        settings.PULSE_API_WRITE_RATE = good
        call_command("check")


@pytest.mark.parametrize("value", [600, 1.5, ("600", "min")])
def test_a_rate_set_in_the_settings_that_is_no_string_is_named_not_a_traceback(acme_api, settings, value):
    """`PULSE_API_READ_RATE = 600` in a settings module: check names it, as it names a bad
    string, and an API call answers nothing half-read either."""
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.PULSE_API_READ_RATE = value
    named = rf"PULSE_API_READ_RATE={re.escape(repr(value))} is not valid: expected a number of calls"
    with pytest.raises(SystemCheckError, match=named):
        call_command("check")
    with pytest.raises(ImproperlyConfigured, match=rf"^{named}"):
        read(acme_api)
