from __future__ import annotations

from django.urls import path

from pulse_site.notifications import views

app_name = "notifications"

urlpatterns = [
    path("notifications/", views.page, name="page"),
    path("notifications/targets/new/", views.target_add, name="target_add"),
    path("notifications/targets/<str:target_id>/test/", views.target_test, name="target_test"),
    path("notifications/rules/new/", views.rule_add, name="rule_add"),
]
