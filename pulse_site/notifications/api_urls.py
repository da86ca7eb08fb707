from __future__ import annotations

from django.urls import path

from pulse_site.notifications import api

urlpatterns = [
    path("notifications/targets/", api.TargetListView.as_view(), name="api-notification-targets"),
    path("notifications/targets/<str:target_id>/", api.TargetDetailView.as_view(), name="api-notification-target"),
    path("notifications/targets/<str:target_id>/test/", api.TargetTestView.as_view(), name="api-notification-test"),
    path("notifications/targets/<str:target_id>/deliveries/", api.TargetDeliveriesView.as_view(),
         name="api-notification-deliveries"),
    path("notifications/rules/", api.RuleListView.as_view(), name="api-notification-rules"),
    path("notifications/rules/<str:rule_id>/", api.RuleDetailView.as_view(), name="api-notification-rule"),
]
