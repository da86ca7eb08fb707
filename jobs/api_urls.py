from __future__ import annotations

from django.urls import path, re_path

from jobs import api, executor_api

urlpatterns = [
    path("jobs/", api.JobListView.as_view(), name="api-jobs"),
    path("jobs/preview/", api.JobPreviewView.as_view(), name="api-job-preview"),
    path("jobs/bulk/", api.JobBulkView.as_view(), name="api-jobs-bulk"),
    path("jobs/bulk/matching/", api.JobBulkMatchingView.as_view(), name="api-jobs-bulk-matching"),
    path("jobs/<str:job_id>/", api.JobDetailView.as_view(), name="api-job"),
    path("jobs/<str:job_id>/cancel/", api.JobCancelView.as_view(), name="api-job-cancel"),
    path("jobs/<str:job_id>/pause/", api.JobPauseView.as_view(), name="api-job-pause"),
    path("jobs/<str:job_id>/resume/", api.JobResumeView.as_view(), name="api-job-resume"),
    path("jobs/<str:job_id>/retry/", api.JobRetryView.as_view(), name="api-job-retry"),
    path("jobs/<str:job_id>/start/", api.JobStartView.as_view(), name="api-job-start"),
    path("jobs/<str:job_id>/attempts/", api.JobAttemptsView.as_view(), name="api-job-attempts"),
    path("jobs/<str:job_id>/stages/", api.JobStagesView.as_view(), name="api-job-stages"),
    path("jobs/<str:job_id>/logs/", api.JobLogsView.as_view(), name="api-job-logs"),
    # With or without the trailing slash: watch clients are often hand-written curl loops.
    re_path(r"^jobs/(?P<job_id>[^/]+)/wait/?$", api.job_wait, name="api-job-wait"),
    path("jobs/<str:job_id>/children/", api.JobChildrenView.as_view(), name="api-job-children"),
    path("handlers/", api.HandlerListView.as_view(), name="api-handlers"),
    path("handlers/<str:name>/", api.HandlerDetailView.as_view(), name="api-handler"),
    path("queue/", api.QueueView.as_view(), name="api-queue"),
    path("queue/pause/", api.QueuePauseView.as_view(), name="api-queue-pause"),
    path("queue/resume/", api.QueueResumeView.as_view(), name="api-queue-resume"),
    path("stats/", api.StatsView.as_view(), name="api-stats"),
    path("executor/", executor_api.ExecutorView.as_view(), name="api-executor"),
]
