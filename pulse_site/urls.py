from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("pulse_site.api_urls")),
    path("", include("pulse_site.teams.urls")),
    path("", include("jobs.urls")),
    path("", include("jobs.queue_urls")),
    path("", include("jobs.handler_urls")),
    path("", include("jobs.system_urls")),
    path("", include("pulse_site.notifications.urls")),
    path("", include("schedules.urls")),
    path("", include("budgets.urls")),
    path("", include("pulse_site.dashboard_urls")),
]

# A database outage answers 503 with Retry-After instead of the 500 page (pulse_site/outage.py).
handler500 = "pulse_site.outage.server_error"
# A request refused before any view (a Host not served here): under /api/, the API's error shape.
handler400 = "pulse_site.outage.bad_request"
