from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "pulse_site.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # The pulse.notify handler and the ticker step that matches rules against the outbox.
        from pulse_site.notifications import handlers, steps  # noqa: F401
