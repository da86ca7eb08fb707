from __future__ import annotations

from django.urls import path

from schedules import api

urlpatterns = [
    path("schedules/", api.ScheduleListView.as_view(), name="api-schedules"),
    path("schedules/preview/", api.SchedulePreviewView.as_view(), name="api-schedules-preview"),
    path("schedules/<str:schedule_id>/", api.ScheduleDetailView.as_view(), name="api-schedule"),
    path("schedules/<str:schedule_id>/pause/", api.SchedulePauseView.as_view(), name="api-schedule-pause"),
    path("schedules/<str:schedule_id>/resume/", api.ScheduleResumeView.as_view(), name="api-schedule-resume"),
    path("schedules/<str:schedule_id>/trigger/", api.ScheduleTriggerView.as_view(), name="api-schedule-trigger"),
    path("schedules/<str:schedule_id>/executions/", api.ExecutionListView.as_view(), name="api-schedule-executions"),
]
