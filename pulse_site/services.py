"""Writes that belong to no single app: the viewer's own preferences."""

from __future__ import annotations

from typing import Any

from pulse_site.errors import ValidationError
from pulse_site.models import UserPreference


def preference_set_theme(*, user: Any, theme: str) -> UserPreference:
    """Remember the theme ("" follows the system, "light", "dark") for every browser of this user."""
    if theme not in UserPreference.Theme.values:
        raise ValidationError.for_field("theme", "Choose system, light or dark.")
    preference, _ = UserPreference.objects.update_or_create(user=user, defaults={"theme": theme})
    return preference

