"""What Django's SecurityMiddleware does not do: the Content-Security-Policy header, answers
with a team's data kept out of every cache, and the refusal of text no column can store."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers, patch_cache_control

# Everything from our own origin; the live updates' WebSocket; no inline script or style anywhere
# (pages pass data in data-* attributes, bars are SVG geometry, Swagger UI's init script is a URL);
# no framing (X-Frame-Options DENY says the same to older browsers).
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "connect-src 'self' ws: wss:",
    "img-src 'self' data:",
    "style-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class PrivateAnswersMiddleware:
    """An answer to a signed-in user or an API token holds a team's data: it is never stored, by the
    browser (the back button after signing out on a shared computer, or after switching team) nor
    by a proxy. A view that says how it may be cached (none does yet) keeps its own word."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        signed_in = user is not None and user.is_authenticated
        if (signed_in or "HTTP_AUTHORIZATION" in request.META) and "Cache-Control" not in response.headers:
            add_never_cache_headers(response)
            patch_cache_control(response, private=True)
        return response


NUL_REFUSED = "NUL characters are not allowed."


def _nul_fields(values: QueryDict) -> list[str]:
    return [repr(name)[1:-1] for name, items in values.lists() if "\x00" in name or any("\x00" in v for v in items)]


class RefuseNulMiddleware:
    """A query or form field holding a NUL character is refused with a 400 naming it, before any
    view: no text column stores one (PostgreSQL raises, a 500 once the request is half-handled) and a
    view reading a field itself (a cursor, a search, a reason) would pass it on. JSON bodies are the
    API parser's to refuse (pulse_site.parsers), in the same words; `%00` is how a NUL arrives
    in a query string or form, decoded (lone surrogates never do: Django decodes those as U+FFFD)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        fields = _nul_fields(request.GET)
        if request.method != "GET" and request.content_type == "application/x-www-form-urlencoded":
            fields += _nul_fields(request.POST)
        if not fields:
            return self.get_response(request)
        problems = {field: [NUL_REFUSED] for field in dict.fromkeys(fields)}
        if request.path.startswith("/api/"):
            from pulse_site.api import error_body

            return JsonResponse(error_body("validation_error", f"{fields[0]}: {NUL_REFUSED}", problems), status=400,
                                json_dumps_params={"separators": (",", ":")})  # as DRF's renderer writes it
        return render(request, "400.html", {"problems": problems}, status=400)
