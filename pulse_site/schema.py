"""The OpenAPI schema class (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS), in a module of its own: DRF
imports it while API view modules are still being imported."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema


class PulseAutoSchema(AutoSchema):
    """drf-spectacular's schema; an operation's query parameters are its view's `queries` serializer
    (pulse_site.api.TeamAPIView), so what is documented is what is validated."""

    def get_override_parameters(self) -> list[Any]:
        query = getattr(self.view, "queries", {}).get(self.method)
        return [query] if query else []
