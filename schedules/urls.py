from __future__ import annotations

from django.urls import path

from schedules import views

app_name = "schedules"

# Schedules are named by public id and always looked up within request.team (404 for others).
urlpatterns = [
    path("schedules/", views.schedule_list, name="list"),
    path("schedules/new/", views.schedule_new, name="new"),
    path("schedules/preview/", views.schedule_preview, name="preview"),
    path("schedules/<str:schedule_id>/", views.schedule_detail, name="detail"),
    path("schedules/<str:schedule_id>/edit/", views.schedule_edit, name="edit"),
    path("schedules/<str:schedule_id>/row/", views.schedule_row, name="row"),
    path("schedules/<str:schedule_id>/executions/", views.schedule_executions, name="executions"),
    path("schedules/<str:schedule_id>/next-runs/", views.schedule_next_runs, name="next_runs"),
    path("schedules/<str:schedule_id>/<str:action>/", views.schedule_action, name="action"),
]
