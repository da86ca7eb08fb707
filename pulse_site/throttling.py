"""API request rates: each credential (an API token, by its public id; a signed-in user, by their
id) may make PULSE_API_READ_RATE reads (GET, HEAD, OPTIONS) and PULSE_API_WRITE_RATE writes per
clock window, counted apart; one more is refused with `Throttled` (429 `throttled`, Retry-After:
the seconds until the window turns) before the view does anything. Every counted answer says
the rate, the calls left and the seconds to the window's turn (RateLimit-Limit, -Remaining and
-Reset, RateHeadersMiddleware), so a client can pace itself instead of meeting the 429.

Calls and live sockets with a bearer secret that is no token's (not a revoked or expired one: a
client's mistake, not a guess) are counted per client address (PULSE_API_AUTH_FAILURE_RATE; an
IPv6 address by its /64): past it, every bearer call and socket from the address is refused
unread until the window turns, so guessing tokens is bounded. Other anonymous calls are not
counted: the permission check refuses them first.

Not the budget's calls_per_minute (budgets), which holds submitted jobs back instead of refusing
calls.

Imported by DRF while rest_framework.views is still being imported (DEFAULT_THROTTLE_CLASSES), so
nothing here imports API views or models at module level.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.humanize.templatetags.humanize import intcomma
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError
from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from pulse_site.env import Rate, rate_parse

logger = logging.getLogger("pulse.throttling")

# Every key starts with this (tests give each test its own, tests/conftest.py).
KEY_PREFIX = "api_rate"


def rate_in_words(rate: Rate, kind: str) -> str:
    """`1200/min`, "read" → "1,200 reads a minute"."""
    return f"{intcomma(rate.number)} {kind}{'' if rate.number == 1 else 's'} {rate.per}"


def _setting_rate(setting: str) -> Rate | None:
    # Read per call, so a changed setting applies at once; as the environment's value was read
    # (a bad one set in the settings module is named, not taken by its unit's first letter).
    value = getattr(settings, setting)
    return _rate_of_text(setting, value) if isinstance(value, str) else rate_parse(setting, value)


@lru_cache(maxsize=32)
def _rate_of_text(setting: str, value: str) -> Rate | None:
    # Parsed once per setting and value, not on every call (a refusal is not cached: raised again).
    return rate_parse(setting, value)


class Window(NamedTuple):
    """The clock window of a rate that an instant is in."""

    number: int  # calls allowed in it
    seconds: int  # its length
    nth: int  # which one since the epoch (keys name it)
    ends: float  # when it turns (epoch seconds)

    @classmethod
    def at(cls, number: int, seconds: int, now: float) -> Window:
        nth = int(now // seconds)
        return cls(number, seconds, nth, (nth + 1) * seconds)

    @classmethod
    def of(cls, rate: Rate, now: float) -> Window:
        return cls.at(rate.number, rate.seconds, now)

    def wait(self, now: float) -> int:
        """Whole seconds from `now` until it turns, at least 1."""
        return max(1, math.ceil(self.ends - now))


def _cache_failed(key: str, exc: Exception) -> None:
    logger.warning("API rate not counted for %s: %s", key, exc)


def _count(key: str, seconds: int) -> int | None:
    """This call's number in its window of `seconds`; None when the cache cannot be reached: the
    call goes through uncounted (a limit that fails closed would take the whole API down with
    Redis). `cache.add` then `cache.incr`, both atomic in Redis and in the local-memory cache, so
    calls made at once from every web process are all counted."""
    try:
        # The key outlives its window by a second, so a late incr never meets a vanished key.
        cache.add(key, 0, timeout=seconds + 1)
        return int(cache.incr(key))
    except (RedisError, OSError, ValueError) as exc:
        _cache_failed(key, exc)
        return None


def _counted(key: str) -> int | None:
    """The number counted so far under `key` (None: the cache cannot be reached, as `_count`)."""
    try:
        return int(cache.get(key, 0))
    except (RedisError, OSError, ValueError) as exc:
        _cache_failed(key, exc)
        return None


def _in_seconds(wait: int) -> str:
    return f"{intcomma(wait)} second{'' if wait == 1 else 's'}"


class RateExceeded(Throttled):
    """Throttled with a message of our own (DRF's appends "Expected available in N seconds.")."""

    def __init__(self, *, wait: int, message: str) -> None:
        super().__init__(detail=message)
        self.wait = wait


class CredentialRateThrottle(BaseThrottle):
    """A fixed-window counter per credential and window (`_count`). DRF's own SimpleRateThrottle
    reads a list of call times, appends and writes it back: concurrent calls overwrite each
    other's entries, and a client with N connections made about N times its rate; its parse_rate
    reads a unit by its first letter (`_setting_rate` reads the rate as env_rate does). A window is
    clock-aligned (a minute's turns at :00), so a client may spend its rate at the end of one
    window and again at the start of the next; in return, RateLimit-Reset says exactly when its
    calls come back."""

    kind = ""  # "read" or "write", in messages and keys
    setting = ""

    def counts(self, request: Request) -> bool:
        raise NotImplementedError

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        from pulse_site.teams.models import ApiToken

        if isinstance(request.auth, ApiToken):
            return f"{KEY_PREFIX}:{self.kind}:token:{request.auth.public_id}"
        if request.user is not None and request.user.is_authenticated:
            return f"{KEY_PREFIX}:{self.kind}:user:{request.user.pk}"
        return None

    def allow_request(self, request: Request, view: Any) -> bool:
        if not self.counts(request):
            return True
        rate = _setting_rate(self.setting)
        if rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = Window.of(rate, now)
        count = _count(f"{key}:{window.nth}", window.seconds)
        if count is None:
            return True
        django_request = getattr(request, "_request", None)
        if django_request is not None:  # said on the answer by RateHeadersMiddleware
            django_request.api_rate = (window, count)
        if count <= window.number:
            return True
        # Raised here rather than answered False: DRF's own refusal cannot say which rate was spent.
        wait = window.wait(now)
        raise RateExceeded(wait=wait, message=self._message(request, rate, wait))

    def _message(self, request: Request, rate: Rate, wait: int) -> str:
        from pulse_site.teams.models import ApiToken

        who = "This token is over its" if isinstance(request.auth, ApiToken) else "You are over your"
        return f"{who} rate of {rate_in_words(rate, self.kind)}; try again in {_in_seconds(wait)}."


class ReadRateThrottle(CredentialRateThrottle):
    kind = "read"
    setting = "PULSE_API_READ_RATE"

    def counts(self, request: Request) -> bool:
        return request.method in SAFE_METHODS


class WriteRateThrottle(CredentialRateThrottle):
    kind = "write"
    setting = "PULSE_API_WRITE_RATE"

    def counts(self, request: Request) -> bool:
        return request.method not in SAFE_METHODS


def _address_key(address: str) -> str | None:
    """The part of a client address the bad-token count goes by: an IPv4 address, an IPv6
    address's /64 (one client may hold all of it; an IPv4-mapped one is its IPv4 address); None
    for none or an unreadable one (a Unix socket's client), counted nowhere rather than all in one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _failures(address: str, now: float) -> tuple[Rate, Window, str] | None:
    """The bad-token rate, its window at `now` and the key of `address` in it; None with no rate
    or no address to count by."""
    rate = _setting_rate("PULSE_API_AUTH_FAILURE_RATE")
    client = _address_key(address)
    if rate is None or client is None:
        return None
    window = Window.of(rate, now)
    return rate, window, f"{KEY_PREFIX}:auth_failure:{client}:{window.nth}"


def bad_tokens_refuse(address: str) -> None:
    """Refuse (RateExceeded) a bearer call or socket from an address past its bad-token rate,
    before its token is looked up: a right guess from there is refused too, or the rate would
    bound nothing. API calls and sockets count together. (Calls in flight at once may each pass
    here before their failures are counted: the bound is the rate and those.)"""
    now = time.time()
    found = _failures(address, now)
    if found is None:
        return
    rate, window, key = found
    failures = _counted(key)
    if failures is not None and failures >= window.number:
        wait = window.wait(now)
        raise RateExceeded(wait=wait, message=(
            f"Too many calls with an invalid token from this address ({rate_in_words(rate, 'failure')}); "
            f"try again in {_in_seconds(wait)}."))


def bad_token_count(address: str) -> None:
    """Count a call or socket whose bearer secret is no token's against `address`."""
    found = _failures(address, time.time())
    if found is not None:
        _, window, key = found
        _count(key, window.seconds)


class RateHeadersMiddleware:
    """Say the API rate a call was counted against on its answer, a 429 included: RateLimit-Limit
    (calls a window), RateLimit-Remaining and RateLimit-Reset (seconds until the window turns)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        told: tuple[Window, int] | None = getattr(request, "api_rate", None)
        if told is not None:
            window, count = told
            now = time.time()
            if now >= window.ends:
                # Answered after its window turned (a wait for a job's end): the next one is new.
                window, count = Window.at(window.number, window.seconds, now), 0
            response["RateLimit-Limit"] = str(window.number)
            response["RateLimit-Remaining"] = str(max(0, window.number - count))
            response["RateLimit-Reset"] = str(window.wait(now))
        return response
