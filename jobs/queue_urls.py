from __future__ import annotations

from django.urls import path

from jobs import queue_views

app_name = "queue"

urlpatterns = [
    path("queue/", queue_views.page, name="page"),
    path("queue/pause/", queue_views.pause, name="pause"),
    path("queue/resume/", queue_views.resume, name="resume"),
    path("queue/banner/", queue_views.banner, name="banner"),
]
