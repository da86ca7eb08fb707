from __future__ import annotations

from django.urls import path

from pulse_site.notifications import views

app_name = "notifications"

urlpatterns = [
    path("notifications/", views.page, name="page"),
    path("notifications/targets/new/", views.target_add, name="target_add"),
    path("notifications/targets/<str:target_id>/test/", views.target_test, name="target_test"),
    path("notifications/targets/<str:target_id>/edit/", views.target_edit, name="target_edit"),
    path("notifications/targets/<str:target_id>/enabled/", views.target_enabled, name="target_enabled"),
    path("notifications/targets/<str:target_id>/rotate/", views.target_rotate, name="target_rotate"),
    path("notifications/targets/<str:target_id>/delete/", views.target_delete, name="target_delete"),
    path("notifications/rules/new/", views.rule_add, name="rule_add"),
    path("notifications/rules/<str:rule_id>/edit/", views.rule_edit, name="rule_edit"),
    path("notifications/rules/<str:rule_id>/enabled/", views.rule_enabled, name="rule_enabled"),
    path("notifications/rules/<str:rule_id>/delete/", views.rule_delete, name="rule_delete"),
]
