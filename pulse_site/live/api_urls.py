from __future__ import annotations

from django.urls import path

from pulse_site.live import api

urlpatterns: list = [
    path("events/", api.EventListView.as_view(), name="api-events"),
]
