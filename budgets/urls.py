from __future__ import annotations

from django.urls import path

from budgets import views

app_name = "budgets"

urlpatterns = [
    path("budget/", views.page, name="page"),
    path("budget/live/", views.live, name="live"),
    path("budget/banner/", views.banner, name="banner"),
    path("budget/settings/", views.settings_update, name="settings"),
    path("budget/caps/remove/", views.cap_remove, name="cap_remove"),
    path("budget/overrides/new/", views.override_create, name="override_create"),
    # Overrides are named by public id, always looked up within request.team (404 for others).
    path("budget/overrides/<str:override_id>/end/", views.override_end, name="override_end"),
]
