from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

# The API's rates, each read by pulse_site.env.rate_parse when the throttles count a call.
RATE_SETTINGS = ("PULSE_API_READ_RATE", "PULSE_API_WRITE_RATE", "PULSE_API_AUTH_FAILURE_RATE")


class PulseConfig(AppConfig):
    """The project itself as an app: base layout, overview page, ticker and operator commands."""

    name = "pulse_site"
    label = "pulse"
    verbose_name = "Pulse"

    def ready(self) -> None:
        checks.register(check_rates)
        checks.register(check_secret_key, checks.Tags.security, deploy=True)


def check_rates(**_: Any) -> list[checks.CheckMessage]:
    """A rate set in a settings module bypasses env_rate's reading at start-up: said by `manage.py
    check` and every command that checks first, not by the first API call it throttles."""
    from django.conf import settings

    from pulse_site.env import rate_parse

    errors: list[checks.CheckMessage] = []
    for name in RATE_SETTINGS:
        try:
            rate_parse(name, getattr(settings, name))
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="pulse.E001"))
    return errors


def check_secret_key(**_: Any) -> list[checks.CheckMessage]:
    """The development key is long and varied enough for Django's own W009, yet public: a site
    started without SECRET_KEY (and without PULSE_PRODUCTION=1, which refuses it) signs with it."""
    from django.conf import settings

    if settings.SECRET_KEY != settings.DEVELOPMENT_SECRET_KEY:
        return []
    return [checks.Warning("SECRET_KEY is the public development key: anyone can forge sessions and "
                           "django-q2 payloads with it.",
                           hint="Set SECRET_KEY (the same on every machine) and PULSE_PRODUCTION=1.",
                           id="pulse.W001")]
