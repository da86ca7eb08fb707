from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from jobs import beats, steps, stopping  # noqa: F401  (steps registers dispatch and rescue ticker steps)
        from jobs.handlers import registry

        registry.load_handler_modules()
        beats.connect()  # worker processes keep their WorkerBeat row current
        stopping.connect()  # SIGTERM stops a worker gracefully (PULSE_STOP_TIMEOUT)
