from __future__ import annotations

from django.urls import path

from jobs import daemon_views, views

app_name = "jobs"

# Jobs are named by public id and always looked up within request.team (404 for others).
urlpatterns = [
    path("jobs/", views.job_list, name="list"),
    path("jobs/new/", views.job_new, name="new"),
    path("jobs/new/preview/", views.job_new_preview, name="new_preview"),
    path("jobs/bulk/", views.job_bulk, name="bulk"),
    path("jobs/export.csv", views.job_export, name="export"),
    path("jobs/bulk/matching/", views.job_bulk_matching, name="bulk_matching"),
    path("jobs/daemons/", daemon_views.panel, name="daemons"),
    path("jobs/<str:job_id>/", views.job_detail, name="detail"),
    path("jobs/<str:job_id>/row/", views.job_row, name="row"),
    path("jobs/<str:job_id>/status/", views.job_status, name="status"),
    path("jobs/<str:job_id>/<str:action>/", views.job_action, name="action"),
]
