from __future__ import annotations

from django.conf import settings
from django.db import models


class UserPreference(models.Model):
    """How one person likes the dashboard, whichever browser they use."""

    class Theme(models.TextChoices):
        SYSTEM = "", "System"
        LIGHT = "light", "Light"
        DARK = "dark", "Dark"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pulse_preference")
    theme = models.CharField(max_length=5, choices=Theme.choices, blank=True, default=Theme.SYSTEM)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} theme={self.theme or 'system'}"
