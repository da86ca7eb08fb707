"""Every API route, mounted under /api/. Apps add their routers here."""

from __future__ import annotations

from django.urls import include, path

urlpatterns: list = [
    path("v1/", include("pulse_site.teams.api_urls")),
]
