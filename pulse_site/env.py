"""Strict readers for environment settings.

Each helper returns the development default when the variable is unset or empty, and stops
start-up with ImproperlyConfigured naming the variable when a value is set but malformed:
a typo in production must never silently fall back to a default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _bad(name: str, value: object, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}.")


def env_str(name: str, default: str, *, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _bad(name, value, "one of 1/0, true/false, yes/no, on/off")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, "a whole number") from None
    if minimum is not None and number < minimum:
        raise _bad(name, value, f"a whole number of at least {minimum}")
    if maximum is not None and number > maximum:
        raise _bad(name, value, f"a whole number of at most {maximum}")
    return number


def env_float(
    name: str, default: float, *, minimum: float = 0.0, environ: Mapping[str, str] | None = None
) -> float:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise _bad(name, value, "a number") from None
    if number != number or number in (float("inf"), float("-inf")) or number < minimum:
        raise _bad(name, value, f"a finite number of at least {minimum}")
    return number


def env_list(name: str, default: list[str], *, environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(
    name: str, default: str, choices: tuple[str, ...], *, environ: Mapping[str, str] | None = None
) -> str:
    value = _raw(name, environ)
    if value is None:
        return default
    if value.lower() not in choices:
        raise _bad(name, value, "one of " + ", ".join(choices))
    return value.lower()


def env_url(
    name: str, default: str, schemes: tuple[str, ...], *, environ: Mapping[str, str] | None = None
) -> str:
    value = _raw(name, environ)
    if value is None:
        return default
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise _bad(name, value, "a URL starting with " + " or ".join(f"{s}://" for s in schemes))
    if parts.scheme != "sqlite" and not parts.hostname:
        raise _bad(name, value, "a URL with a host name")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise _bad(name, value, "a URL with a numeric port") from None
    return value


_RATE = re.compile(r"([0-9]+)/(s|sec|second|m|min|minute|h|hour|d|day)")
# By a unit's first letter: how it is written back, its window in seconds and in words.
_RATE_UNITS = {"s": ("s", 1, "a second"), "m": ("min", 60, "a minute"), "h": ("hour", 3600, "an hour"),
               "d": ("day", 86400, "a day")}


@dataclass(frozen=True)
class Rate:
    """A number of calls in each clock window: `1200/min` is 1,200 in every 60 seconds."""

    number: int
    unit: str  # as written back: s, min, hour or day
    seconds: int
    per: str  # the window in words: "a minute"

    def __str__(self) -> str:
        return f"{self.number}/{self.unit}"


def rate_parse(name: str, value: object) -> Rate | None:
    """The rate of calls the setting `name` holds, one reading for the environment (env_rate) and
    the throttles (pulse_site.throttling) alike; None for none or `off`. Anything else (a number
    set in a settings module too) stops with ImproperlyConfigured naming `name`: DRF's own
    parse_rate reads the unit's first letter only, so `10/mxyz` would pass there as ten a minute."""
    text = value.strip().lower() if isinstance(value, str) else None
    if value is None or text == "off":
        return None
    match = None if text is None else _RATE.fullmatch(text)
    if match is None or int(match[1]) < 1:
        raise _bad(name, value, "a number of calls (at least 1) a second, minute, hour or day, such as 1200/min, or off")
    return Rate(int(match[1]), *_RATE_UNITS[match[2][0]])


def env_rate(name: str, default: str | None, *, environ: Mapping[str, str] | None = None) -> str | None:
    """A number of calls per second, minute, hour or day (rate_parse), as the throttles read it,
    written back in one spelling (`1200/min`, `5/s`, `100/hour`, `1/day`); None for `off`."""
    value = _raw(name, environ)
    if value is None:
        return default
    rate = rate_parse(name, value)
    return None if rate is None else str(rate)
