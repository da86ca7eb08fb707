"""Every API route, mounted under /api/. Apps add their routers here."""

from __future__ import annotations

from django.urls import include, path
from pulse_site.api import ApiDocsView, ApiSchemaView, api_catch_all
from pulse_site.api_root import ApiRootView

urlpatterns: list = [
    path("v1/", ApiRootView.as_view(), name="api-root"),
    path("v1/", include("pulse_site.teams.api_urls")),
    path("v1/", include("jobs.api_urls")),
    path("v1/", include("schedules.api_urls")),
    path("v1/", include("budgets.api_urls")),
    path("v1/", include("pulse_site.notifications.api_urls")),
    path("v1/", include("pulse_site.live.api_urls")),
    path("schema/", ApiSchemaView.as_view(), name="api-schema"),
    path("docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
]

# Must stay last: any other /api/ URL answers 404 in the API's error shape.
urlpatterns.append(api_catch_all())
