"""Dashboard pages that are not owned by one app (the overview)."""

from __future__ import annotations

urlpatterns: list = []
