"""API request rates: each credential (an API token, by its public id; a signed-in user, by their
id) may make PULSE_API_READ_RATE reads (GET, HEAD, OPTIONS) and PULSE_API_WRITE_RATE writes per
clock window, counted apart; one more is refused with `Throttled` (429 `throttled`, Retry-After:
the seconds until the window turns) before the view does anything.

Not the budget's calls_per_minute (budgets), which holds submitted jobs back instead of refusing
calls. Anonymous calls are not counted: the permission check refuses them first.

Imported by DRF while rest_framework.views is still being imported (DEFAULT_THROTTLE_CLASSES), so
nothing here imports API views or models at module level.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
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


class RateExceeded(Throttled):
    """Throttled with a message of our own (DRF's appends "Expected available in N seconds.")."""

    def __init__(self, *, wait: int, message: str) -> None:
        super().__init__(detail=message)
        self.wait = wait


class CredentialRateThrottle(SimpleRateThrottle):
    """A fixed-window counter per credential and window: `cache.add` then `cache.incr`, both atomic
    in Redis and in the local-memory cache, so calls made at once from every web process are all
    counted. DRF's own SimpleRateThrottle reads a list of call times, appends and writes it back:
    concurrent calls overwrite each other's entries, and a client with N connections made about N
    times its rate. A window is clock-aligned (a minute's turns at :00), so a client may spend its
    rate at the end of one window and again at the start of the next."""

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
        if key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        count = self._count(f"{key}:{window}")
        if count is None or count <= self.num_requests:
            return True
        # Raised here rather than answered False: DRF's own refusal cannot say which rate was spent.
        wait = max(1, math.ceil((window + 1) * self.duration - now))
        raise RateExceeded(wait=wait, message=self._message(request, wait))

    def _count(self, key: str) -> int | None:
        """This call's number in its window, or None when the cache cannot be reached: the call
        goes through uncounted (a limit that fails closed would take the whole API down with Redis)."""
        try:
            # The key outlives its window by a second, so a late incr never meets a vanished key.
            self.cache.add(key, 0, timeout=self.duration + 1)
            return int(self.cache.incr(key))
        except (RedisError, OSError, ValueError) as exc:
            logger.warning("API rate not counted for %s: %s", key, exc)
            return None

    def _message(self, request: Request, wait: int) -> str:
        from pulse_site.teams.models import ApiToken

        seconds = f"{intcomma(wait)} second{'' if wait == 1 else 's'}"
        rate = rate_in_words(self.rate or "", self.kind)
        who = "This token is over its" if isinstance(request.auth, ApiToken) else "You are over your"
        return f"{who} rate of {rate}; try again in {seconds}."


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
