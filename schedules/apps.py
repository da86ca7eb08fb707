from __future__ import annotations

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Schedules"

    def ready(self) -> None:
        from schedules import steps  # noqa: F401  (registers the schedule tick and execution follow-up)
