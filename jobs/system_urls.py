from __future__ import annotations

from django.urls import path

from jobs import system_views

app_name = "system"

urlpatterns = [
    path("system/", system_views.page, name="page"),
    path("system/status/", system_views.status, name="status"),
]
