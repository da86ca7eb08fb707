from __future__ import annotations

from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "pulse_site.live"
    label = "live"
    verbose_name = "Live events"

    def ready(self) -> None:
        from pulse_site.live import steps  # noqa: F401  (registers the relay and prune ticker steps)
