from __future__ import annotations

from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "pulse_site.live"
    label = "live"
    verbose_name = "Live events"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from pulse_site.live import steps  # noqa: F401  (registers the relay and prune ticker steps)
        from pulse_site.live.services import user_saved

        # Users are changed where no service of ours runs (Django's admin, shell, commands).
        post_save.connect(user_saved, sender=get_user_model(), dispatch_uid="pulse.live.user_saved")
