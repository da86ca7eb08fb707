"""Dashboard pages that are not owned by one app: the overview, login and logout."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from pulse_site import views
from pulse_site.teams import views as team_views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("health/", views.health, name="health"),
    path("overview/pulse/", views.overview_pulse, name="overview_pulse"),
    path("overview/charts/", views.overview_charts, name="overview_charts"),
    path("overview/activity/", views.overview_activity, name="overview_activity"),
    path("activity/", views.activity, name="activity"),
    path("search/", views.search, name="search"),
    path("preferences/theme/", views.theme, name="theme"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="registration/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", team_views.LogoutView.as_view(), name="logout"),
]
