"""GET /api/v1/: the API's root says where its collections, its schema and its docs are, so a client
(or a person with curl) starting there finds the rest instead of a 404. It holds no team's data: no
credentials are needed (a bad token is refused all the same, like on every other route)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pulse_site.api import error_responses, valid_query

# Each collection by the name a client reads, and its route's name.
RESOURCES = {
    "jobs": "api-jobs", "handlers": "api-handlers", "queue": "api-queue", "stats": "api-stats",
    "executor": "api-executor", "schedules": "api-schedules", "budget": "api-budget",
    "budget_usage": "api-budget-usage", "budget_history": "api-budget-history",
    "budget_changes": "api-budget-changes", "budget_held": "api-budget-held",
    "budget_overrides": "api-budget-overrides", "team": "api-team", "members": "api-members",
    "tokens": "api-tokens", "notification_targets": "api-notification-targets",
    "notification_rules": "api-notification-rules", "events": "api-events",
}

RootOut = inline_serializer("ApiRoot", {
    "version": serializers.CharField(),
    "schema": serializers.URLField(help_text="The OpenAPI document."),
    "docs": serializers.URLField(help_text="Interactive docs (Swagger UI) for a signed-in member."),
    "resources": serializers.DictField(child=serializers.URLField(), help_text="Each collection's URL by its name."),
})


class ApiRootView(APIView):
    """Where the API's collections, its OpenAPI schema and its docs are."""

    permission_classes = [AllowAny]
    http_method_names = ["get", "head", "options"]

    @extend_schema(operation_id="api_root", responses={200: RootOut, **error_responses(401)})
    def get(self, request: Request) -> Response:
        valid_query(serializers.Serializer, request)  # it takes none: a misspelt one is refused by name

        def url(name: str) -> str:
            return request.build_absolute_uri(reverse(name))

        return Response({"version": "v1", "schema": url("api-schema"), "docs": url("api-docs"),
                         "resources": {key: url(name) for key, name in RESOURCES.items()}})
