from __future__ import annotations

from django.apps import AppConfig


class PulseConfig(AppConfig):
    """The project itself as an app: base layout, overview page, ticker and operator commands."""

    name = "pulse_site"
    label = "pulse"
    verbose_name = "Pulse"
