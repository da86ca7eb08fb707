from __future__ import annotations

from django.urls import path

from budgets import api

urlpatterns = [
    path("budget/", api.PolicyView.as_view(), name="api-budget"),
    path("budget/usage/", api.UsageView.as_view(), name="api-budget-usage"),
    path("budget/history/", api.HistoryView.as_view(), name="api-budget-history"),
    path("budget/changes/", api.ChangesView.as_view(), name="api-budget-changes"),
    path("budget/held/", api.HeldJobsView.as_view(), name="api-budget-held"),
    path("budget/overrides/", api.OverrideListView.as_view(), name="api-budget-overrides"),
    path("budget/overrides/<str:override_id>/", api.OverrideDetailView.as_view(), name="api-budget-override"),
    path("budget/overrides/<str:override_id>/end/", api.OverrideEndView.as_view(), name="api-budget-override-end"),
]
