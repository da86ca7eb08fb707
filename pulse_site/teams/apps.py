from __future__ import annotations

from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "pulse_site.teams"
    label = "teams"
    verbose_name = "Teams and access"
