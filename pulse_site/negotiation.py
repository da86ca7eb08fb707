"""The API's one content negotiation: a `?format=` is a query parameter like any other.

REST_FRAMEWORK's DEFAULT_CONTENT_NEGOTIATION_CLASS. Its own module, as the parser is: DRF's
APIView reads the setting when it is defined, so pulse_site.api (which subclasses it) cannot hold it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import Http404
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.settings import api_settings

from pulse_site.errors import ValidationError, choose_one_of


class FormatNegotiation(DefaultContentNegotiation):
    """A `?format=` that no renderer of the view serves is refused by name (`?format=xml` on a JSON
    API): DRF answered it with a bare 404 "Not found.", as if the URL named nothing."""

    def filter_renderers(self, renderers: Iterable[Any], format: str) -> list[Any]:
        renderers = list(renderers)
        try:
            return super().filter_renderers(renderers, format)
        except Http404:
            formats = list(dict.fromkeys(renderer.format for renderer in renderers))
            raise ValidationError.for_field(api_settings.URL_FORMAT_OVERRIDE or "format",
                                            choose_one_of(formats)) from None
