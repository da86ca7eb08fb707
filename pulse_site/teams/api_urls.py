from __future__ import annotations

from django.urls import path

from pulse_site.teams import api

urlpatterns: list = [
    path("team/", api.TeamView.as_view(), name="api-team"),
    path("team/members/", api.MemberListView.as_view(), name="api-members"),
    path("team/members/<int:user_id>/", api.MemberDetailView.as_view(), name="api-member"),
    path("tokens/", api.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<str:token_id>/", api.TokenDetailView.as_view(), name="api-token"),
]
