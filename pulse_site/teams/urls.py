from __future__ import annotations

from django.urls import path

from pulse_site.teams import views

app_name = "teams"

urlpatterns = [
    path("team/", views.detail, name="detail"),
    path("team/switch/", views.switch, name="switch"),
    path("team/members/add/", views.member_add, name="member_add"),
    # Members are named by user id, always looked up within request.team (404 for others).
    path("team/members/<int:user_id>/role/", views.member_role, name="member_role"),
    path("team/members/<int:user_id>/remove/", views.member_remove, name="member_remove"),
    path("team/settings/", views.settings_update, name="settings"),
    path("team/retention/", views.retention_update, name="retention"),
    path("team/tokens/new/", views.token_create, name="token_create"),
    path("team/tokens/<str:token_id>/revoke/", views.token_revoke, name="token_revoke"),
    path("account/password/", views.password_change, name="password"),
]
