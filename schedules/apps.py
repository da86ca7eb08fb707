from __future__ import annotations

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Schedules"

    def ready(self) -> None:
        from jobs.signals import job_cancelled, job_retried
        from schedules import steps  # noqa: F401  (registers the schedule tick and execution follow-up)
        from schedules.services import run_cancelled, run_retried

        job_retried.connect(run_retried, dispatch_uid="schedules-run-retried")
        job_cancelled.connect(run_cancelled, dispatch_uid="schedules-run-cancelled")
