"""API request rates: each credential (an API token, by its public id; a signed-in user, by their
id) may make PULSE_API_READ_RATE reads (GET, HEAD, OPTIONS) and PULSE_API_WRITE_RATE writes per
clock window, counted apart; one more is refused with `Throttled` (429 `throttled`, Retry-After:
the seconds until the window turns) before the view does anything. Every counted answer says
the rate, the calls left and the seconds to the window's turn (RateLimit-Limit, -Remaining and
-Reset, RateHeadersMiddleware), so a client can pace itself instead of meeting the 429.

Calls and live sockets with an invalid, revoked or expired bearer token are counted per client
address (PULSE_API_AUTH_FAILURE_RATE): past it, every bearer call and socket from the address is
refused unread until the window turns, so guessing tokens is bounded. Other anonymous calls are not counted: the
permission check refuses them first.

Not the budget's calls_per_minute (budgets), which holds submitted jobs back instead of refusing
calls.

Imported by DRF while rest_framework.views is still being imported (DEFAULT_THROTTLE_CLASSES), so
nothing here imports API views or models at module level.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.contrib.humanize.templatetags.humanize import intcomma
from redis.exceptions import RedisError
from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger("pulse.throttling")

# Every key starts with this (tests give each test its own, tests/conftest.py).
KEY_PREFIX = "api_rate"
_UNIT_WORDS = {"s": "a second", "m": "a minute", "h": "an hour", "d": "a day"}


def rate_in_words(rate: str, kind: str) -> str:
    """`1200/min`, "read" → "1,200 reads a minute"."""
    number, unit = rate.split("/")
    return f"{intcomma(int(number))} {kind}{'' if int(number) == 1 else 's'} {_UNIT_WORDS[unit[0]]}"


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _window(rate: str, now: float) -> tuple[int, int, int, int]:
    """`rate`'s number of calls and window length (seconds), the clock window `now` is in (its
    index) and the whole seconds until it turns (at least 1)."""
    number, unit = rate.split("/")
    seconds = _UNIT_SECONDS[unit[0]]
    window = int(now // seconds)
    return int(number), seconds, window, max(1, math.ceil((window + 1) * seconds - now))


def _count(key: str, seconds: int, *, add: bool = True) -> int | None:
    """This call's number in its window of `seconds` (`add`), or the number so far; None when the cache cannot
    be reached: the call goes through uncounted (a limit that fails closed would take the whole
    API down with Redis). `cache.add` then `cache.incr`, both atomic in Redis and in the
    local-memory cache, so calls made at once from every web process are all counted."""
    try:
        if not add:
            return int(cache.get(key, 0))
        # The key outlives its window by a second, so a late incr never meets a vanished key.
        cache.add(key, 0, timeout=seconds + 1)
        return int(cache.incr(key))
    except (RedisError, OSError, ValueError) as exc:
        logger.warning("API rate not counted for %s: %s", key, exc)
        return None


def _in_seconds(wait: int) -> str:
    return f"{intcomma(wait)} second{'' if wait == 1 else 's'}"


class RateExceeded(Throttled):
    """Throttled with a message of our own (DRF's appends "Expected available in N seconds.")."""

    def __init__(self, *, wait: int, message: str) -> None:
        super().__init__(detail=message)
        self.wait = wait


class CredentialRateThrottle(SimpleRateThrottle):
    """A fixed-window counter per credential and window (`_count`). DRF's own SimpleRateThrottle
    reads a list of call times, appends and writes it back: concurrent calls overwrite each
    other's entries, and a client with N connections made about N times its rate. A window is
    clock-aligned (a minute's turns at :00), so a client may spend its rate at the end of one
    window and again at the start of the next; in return, RateLimit-Reset says exactly when its
    calls come back."""

    kind = ""  # "read" or "write", in messages and keys
    setting = ""
    # Set by SimpleRateThrottle.__init__ from the rate (None with no rate: never read then).
    num_requests: int
    duration: int

    def get_rate(self) -> str | None:
        # Read per request (a throttle is made for each), so a changed setting applies at once.
        return getattr(settings, self.setting)

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
        if self.rate is None or not self.counts(request):
            return True
        key = self.get_cache_key(request, view)
        if key is None or self.rate is None:
            return True
        number, seconds, window, wait = _window(self.rate, self.timer())
        count = _count(f"{key}:{window}", seconds)
        if count is None:
            return True
        django_request = getattr(request, "_request", None)
        if django_request is not None:  # said on the answer by RateHeadersMiddleware
            django_request.api_rate = (number, max(0, number - count), wait)
        if count <= number:
            return True
        # Raised here rather than answered False: DRF's own refusal cannot say which rate was spent.
        raise RateExceeded(wait=wait, message=self._message(request, wait))

    def _message(self, request: Request, wait: int) -> str:
        from pulse_site.teams.models import ApiToken

        rate = rate_in_words(self.rate or "", self.kind)
        who = "This token is over its" if isinstance(request.auth, ApiToken) else "You are over your"
        return f"{who} rate of {rate}; try again in {_in_seconds(wait)}."


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


def _failures(address: str) -> tuple[str, str, tuple[int, int, int, int]] | None:
    """The bad-token rate, its key for `address` and the window now, and the window (`_window`);
    None with no rate."""
    rate: str | None = settings.PULSE_API_AUTH_FAILURE_RATE
    if rate is None:
        return None
    window = _window(rate, time.time())
    return rate, f"{KEY_PREFIX}:auth_failure:{address or 'unknown'}:{window[2]}", window


def bad_tokens_refuse(address: str) -> None:
    """Refuse (RateExceeded) a bearer call or socket from an address past its bad-token rate,
    before its token is looked up: a right guess from there is refused too, or the rate would
    bound nothing. API calls and sockets count together."""
    found = _failures(address)
    if found is None:
        return
    rate, key, (number, _, _, wait) = found
    failures = _count(key, 0, add=False)
    if failures is not None and failures >= number:
        rate = rate_in_words(rate, "failure")
        raise RateExceeded(wait=wait, message=f"Too many calls with an invalid token from this address ({rate}); "
                                              f"try again in {_in_seconds(wait)}.")


def bad_token_count(address: str) -> None:
    """Count a call or socket whose bearer token was invalid, revoked or expired against `address`."""
    found = _failures(address)
    if found is not None:
        _, key, (_, seconds, _, _) = found
        _count(key, seconds)


class RateHeadersMiddleware:
    """Say the API rate a call was counted against on its answer, a 429 included: RateLimit-Limit
    (calls a window), RateLimit-Remaining and RateLimit-Reset (seconds until the window turns)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        told = getattr(request, "api_rate", None)
        if told is not None:
            for name, value in zip(("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"), told, strict=True):
                response[name] = str(value)
        return response
