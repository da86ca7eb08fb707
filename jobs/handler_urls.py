from __future__ import annotations

from django.urls import path

from jobs import handler_views

app_name = "handlers"

urlpatterns = [
    path("handlers/", handler_views.page, name="page"),
    path("handlers/<str:name>/", handler_views.detail, name="detail"),
]
