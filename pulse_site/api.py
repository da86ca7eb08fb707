"""The API edge: one error shape for every refusal, and the small helpers API views share.

Every error an API client can cause answers
`{"error": {"code": str, "message": str, "fields": {field: [reasons]}}}` with a 4xx status:
PulseError (its own status), DRF's exceptions (validation, parse, auth, permission, 404, 405,
415, 429) and Django's Http404 / PermissionDenied. Anything else is a server bug and is left to
propagate (500) so it is logged and seen, except a database outage (a lost or refused connection),
which is not a bug: 503 `database_unavailable` with Retry-After, so clients back off and retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, re_path, resolve, reverse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers, status
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView, set_rollback

from pulse_site.errors import FieldErrors, PulseError, ValidationError, choose_one_of
from pulse_site.ids import MAX_PAGE
from pulse_site.json_types import field_schema, miswritten_query, wrong_types
from pulse_site.outage import RETRY_AFTER_SECONDS, is_database_outage

if TYPE_CHECKING:
    from django.urls import URLPattern

    from pulse_site.teams.models import ApiToken, Membership, Team

# DRF's default codes, renamed where Pulse's error tree already has a name for the same thing.
_CODE_FOR = {"invalid": "validation_error", "not_found": "not_found", "permission_denied": "permission_denied"}


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def pulse_error_response(exc: PulseError) -> Response:
    """The response for a refusal raised by a service."""
    return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Serializer errors as {dotted.path: [reasons]}; list items are addressed by index. A nested
    object's own errors (not a dictionary, say) are its path's, not `path.non_field_errors`."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            own = prefix and key == api_settings.NON_FIELD_ERRORS_KEY
            for path, reasons in flatten_errors(value, prefix if own else f"{prefix}.{key}" if prefix else str(key)).items():
                out.setdefault(path, []).extend(reasons)
    elif isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        for index, item in enumerate(detail):
            if item:  # ListSerializer reports valid items as {}
                out.update(flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        reasons = detail if isinstance(detail, list) else [detail]
        out.setdefault(prefix or "non_field_errors", []).extend(str(reason) for reason in reasons)
    return out


def _validation_response(exc: drf_exceptions.ValidationError) -> Response:
    fields = flatten_errors(exc.detail)
    field, reasons = next(iter(fields.items()), ("", ["Invalid input."]))
    message = reasons[0] if field in ("", "non_field_errors") else f"{field}: {reasons[0]}"
    return Response(error_body("validation_error", message, fields), status=status.HTTP_400_BAD_REQUEST)


def _api_exception_response(exc: drf_exceptions.APIException) -> Response:
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    message = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
    return Response(error_body(_CODE_FOR.get(code, code), str(message)), status=exc.status_code, headers=headers)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST_FRAMEWORK's EXCEPTION_HANDLER: map every client mistake to the one error shape."""
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    if isinstance(exc, RequestDataTooBig):
        # Django would answer an HTML 400; the body is never parsed, so no field can be named.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        response = Response(error_body("request_too_large", f"The request body is over {limit} bytes."),
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    elif isinstance(exc, PulseError):
        response = pulse_error_response(exc)
    elif isinstance(exc, drf_exceptions.ValidationError):
        response = _validation_response(exc)
    elif isinstance(exc, drf_exceptions.APIException):
        response = _api_exception_response(exc)
    elif isinstance(exc, DatabaseError) and is_database_outage(exc):
        response = Response(error_body("database_unavailable", "The database is unavailable for a moment; "
                                       f"try again in {RETRY_AFTER_SECONDS} seconds."),
                            status=status.HTTP_503_SERVICE_UNAVAILABLE,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    else:
        return None
    # The view's transaction (ATOMIC_REQUESTS) must not commit a half-done change.
    set_rollback()
    return response


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    # Named as the answer names it; DRF's metaclass takes declared fields out of the class, so it
    # does not shadow Serializer.fields (the stubs cannot know).
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))  # type: ignore[assignment]


class ErrorSerializer(serializers.Serializer):
    """The one error shape (documented in the OpenAPI schema)."""

    error = ErrorDetailSerializer()


# For `extend_schema(parameters=[LOCATION])` of an operation that answers `created(...)`.
LOCATION = OpenApiParameter("Location", str, OpenApiParameter.HEADER, response=[201],
                            description="The new row's URL, where it is read back.")


def created(body: Any, url_name: str, **kwargs: str) -> Response:
    """A create's 201, with the new row's URL (`url_name` reversed with `kwargs`) in Location."""
    return Response(body, status=status.HTTP_201_CREATED, headers={"Location": reverse(url_name, kwargs=kwargs)})


def error_responses(*statuses: int) -> dict[int, type[ErrorSerializer]]:
    """For `extend_schema(responses={200: X, **error_responses(400, 404)})`."""
    return {code: ErrorSerializer for code in statuses}


def _error_response(description: str, **more: Any) -> dict[str, Any]:
    return {"description": description, **more,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


OUTAGE_RESPONSE = _error_response(
    "The database is unavailable for a moment (error code `database_unavailable`); "
    f"retry after the seconds in Retry-After ({RETRY_AFTER_SECONDS}).",
    headers={"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}})
THROTTLED_RESPONSE = _error_response(
    "Over the caller's rate of reads or writes (PULSE_API_READ_RATE, PULSE_API_WRITE_RATE; error code "
    "`throttled`); nothing was done. Retry after the seconds in Retry-After, when the window turns.",
    headers={"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}})
# What any operation may answer, whatever it does; (methods, status, answer).
COMMON_RESPONSES = [
    ({"get", "put", "post", "patch", "delete"}, "400", _error_response(
        "A query parameter the operation does not take, or one given twice, refused by name.")),
    ({"get", "put", "post", "patch", "delete"}, "406", _error_response(
        "The Accept header names no type the API answers in (JSON).")),
    ({"put", "post", "patch", "delete"}, "413", _error_response(
        f"A body over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes (error code `request_too_large`).")),
    ({"put", "post", "patch", "delete"}, "415", _error_response(
        "A body that is not JSON (Content-Type application/json).")),
    ({"get", "put", "post", "patch", "delete"}, "429", THROTTLED_RESPONSE),
    ({"get", "put", "post", "patch", "delete"}, "503", OUTAGE_RESPONSE),
]


def schema_common_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the refusals every operation may answer (a query
    parameter it does not take, an Accept it cannot serve, a body too large or not JSON, a
    rate spent, a database outage), so the schema says so for each one; an operation's own description of a
    status stays."""
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            for methods, code, answer in COMMON_RESPONSES:
                if method in methods:
                    operation.setdefault("responses", {}).setdefault(code, answer)
    return result


def schema_blank_query_parameters(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every query parameter may be sent blank, and is then
    as if not given (valid_query), which a date-time's or an integer's own schema cannot say."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    parameter["allowEmptyValue"] = True
    return result


# --- What a view needs from the request ------------------------------------------------------


def valid_input(serializer_class: type[serializers.Serializer], request: Request, *, partial: bool = False,
                unknown: str = "Unknown field.") -> dict[str, Any]:
    """The request body validated by `serializer_class`, for every API that takes one. A field the
    serializer does not have is refused with its name (`unknown`: the reason given), not dropped:
    a misspelt or unsupported option must not look accepted; nor is a value of another JSON type
    than its field documents coerced (`"5"` for an integer, `"true"` for a boolean, `5` for text
    or money): each is refused naming its path and the type expected."""
    serializer = serializer_class(data=request.data, partial=partial)
    wrong = dict(wrong_types(field_schema(serializer), request.data))
    if not isinstance(request.data, dict):  # no object at all ("body" names it): nothing else to say
        raise ValidationError.for_field("body", wrong["body"])
    return _validated(serializer, request.data, unknown, refused=wrong)


def no_input(request: Request) -> None:
    """For an endpoint that takes no body (an action such as cancel, retry or trigger, a DELETE):
    refuse one it is sent by valid_input's rule, each field named as unknown and anything but an
    object refused. An empty body and `{}` pass. Such a body used to be dropped, so a retry sent a
    new payload answered 200 and ran the old one. Called after the object's lookup, as valid_input
    is: another team's id is a 404 whatever the body says."""
    valid_input(serializers.Serializer, request)


def valid_query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The query string validated by `serializer_class`, every bad parameter named at once. A
    parameter the serializer does not have is refused by name (a misspelt filter must not answer
    with everything), and so is one given twice (each takes one value: only the last was read, so
    ?status=queued&status=failed answered the failed jobs alone); a blank one is as if not given,
    except where blank is a value (text)."""
    fields = serializer_class().fields
    repeated = sorted(name for name, values in request.query_params.lists() if len(values) > 1 and name in fields)
    given = {name: value for name, value in request.query_params.items()
             if name not in repeated and (value != "" or isinstance(fields.get(name), serializers.CharField))}
    given.pop(api_settings.URL_FORMAT_OVERRIDE or "", None)  # DRF's own ?format=
    refused = {name: "Give it once." for name in repeated}
    refused.update((name, reason) for name, value in given.items() if name in fields and isinstance(value, str)
                   if (reason := miswritten_query(fields[name], value)) is not None)
    return _validated(serializer_class(data=given), given, "Unknown query parameter.", refused=refused)


def as_sent(schema: dict[str, Any] | serializers.Field, base: type[serializers.Field] = serializers.JSONField,
            **kwargs: Any) -> serializers.Field:
    """A body field its service checks (refusing a bad value by name with every other bad field of
    the request at once, which a serializer's refusal, coming first and alone, would not), kept as
    `base` reads it, and documented in the OpenAPI schema as `schema` (a field's or a dictionary)
    rather than as any value; a schema that is `nullable` takes null."""
    if isinstance(schema, dict):
        kwargs.setdefault("allow_null", bool(schema.get("nullable")))
    return extend_schema_field(schema)(type("AsSent", (base,), {}))(**kwargs)


def query_int(*, low: int, high: int, default: int, help_text: str = "") -> serializers.IntegerField:
    """A whole-number query parameter from `low` to `high`, refused in those words."""
    words = f"From {low} to {high}."
    return serializers.IntegerField(
        required=False, default=default, min_value=low, max_value=high, help_text=help_text or f"{words[:-1]}, default {default}.",
        error_messages={"invalid": "A whole number.", "min_value": words, "max_value": words,
                        "max_string_length": "A whole number."})


def query_choice(choices: list[str], help_text: str = "") -> serializers.ChoiceField:
    # Blank is taken (as if not given, as every query parameter is), so the schema says so.
    return serializers.ChoiceField(choices=choices, required=False, allow_blank=True, help_text=help_text,
                                   error_messages={"invalid_choice": choose_one_of(choices)})


class PageQuery(serializers.Serializer):
    """The query of a keyset-paginated list: where to carry on and how many."""

    cursor = serializers.CharField(required=False, allow_blank=True, help_text="The next_cursor of the previous page.")
    limit = query_int(low=1, high=MAX_PAGE, default=50)


def _validated(serializer: serializers.Serializer, data: Any, unknown: str,
               refused: dict[str, str] | None = None) -> dict[str, Any]:
    """The serializer's data, or one refusal naming every bad field: those `refused` already (with
    their reason, which stands alone: the serializer's for the same field or inside it would say
    it again in other words), those it has not (`unknown`) and those it refuses."""
    refused = refused or {}
    errors = FieldErrors()
    for name, reason in refused.items():
        errors.add_reason(name, reason)
    if isinstance(data, dict):
        for name in sorted(set(data) - set(serializer.fields)):
            errors.add_reason(name, unknown)
    if not serializer.is_valid():
        for name, reasons in flatten_errors(serializer.errors).items():
            if any(name == done or name.startswith(f"{done}.") for done in refused):
                continue
            for reason in reasons:
                errors.add_reason(name, reason)
    errors.raise_any()
    return dict(serializer.validated_data)


def request_team(request: Request) -> Team:
    """The team the request acts for: the token's team, or the session's chosen team.

    The permission classes guarantee it is set; this only fails for a view that forgot them.
    """
    team = getattr(request, "team", None)
    if team is None:
        raise drf_exceptions.NotAuthenticated()
    return team


def request_membership(request: Request) -> Membership | None:
    """The caller's membership for session requests; None for API tokens."""
    return getattr(request, "membership", None)


def request_token(request: Request) -> ApiToken | None:
    from pulse_site.teams.models import ApiToken

    return request.auth if isinstance(request.auth, ApiToken) else None


# Base for team-scoped API views: `self.team`, `self.membership`, `self.token`. PulseError raised by
# a service needs no handling here: `exception_handler` maps it. (A comment, not a docstring: the
# OpenAPI schema takes an operation's description from the first docstring up the view's classes.)
class TeamAPIView(APIView):
    # The query parameters each method takes (a serializer; GET's serve HEAD). Any other parameter,
    # on any method, is refused by name: a misspelt filter must not answer as if it were not there.
    queries: dict[str, type[serializers.Serializer]] = {}
    query: dict[str, Any]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # A method the URL does not take is a 405 whoever asks and whatever it carries: DRF checks
        # it last, so a token's PUT to the team was a 403 and a TRACE with a GET's parameters a 400.
        name = (request.method or "").lower()
        if name not in self.http_method_names or not hasattr(self, name):
            raise drf_exceptions.MethodNotAllowed(request.method or "")
        super().initial(request, *args, **kwargs)  # authentication and permissions first
        method = "GET" if request.method == "HEAD" else request.method
        self.query = valid_query(self.queries.get(method or "", serializers.Serializer), request)

    @property
    def team(self) -> Team:
        return request_team(self.request)

    @property
    def membership(self) -> Membership | None:
        return request_membership(self.request)

    @property
    def token(self) -> ApiToken | None:
        return request_token(self.request)

    @property
    def who(self) -> str:
        """The caller as events and history name them: `token <its name>`, or the member's username."""
        token = self.token
        return f"token {token.name}" if token is not None else self.request.user.get_username()


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@authentication_classes([])
@permission_classes([])
def _api_not_found(request: Request, *args: object, **kwargs: object) -> Response:
    raise drf_exceptions.NotFound(_not_found_message(request.path_info))


def _not_found_message(path: str) -> str:
    """Says where a URL written without its trailing slash is (APPEND_SLASH cannot redirect under
    /api/: this catch-all matches every URL there, and a POST's body would be lost anyway)."""
    if not path.endswith("/"):
        try:
            match = resolve(path + "/")
        except Resolver404:
            match = None
        if match is not None and match.url_name != "api-not-found":
            return f"No API route matches this URL; API URLs end with a slash: {path}/"
    return "No API route matches this URL."


@csrf_exempt
def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
    response = _api_not_found(request, *args, **kwargs)
    # DRF lists the view's methods in Allow, every one of them; no method is allowed at a URL
    # that is not there.
    del response["Allow"]
    return response


def api_catch_all() -> URLPattern:
    """The last API route: an unknown /api/ URL answers in the error shape, not as an HTML page."""
    return re_path(r"", api_not_found, name="api-not-found")


class ApiSchemaView(SpectacularAPIView):
    """The OpenAPI document; its refusals are JSON errors like every other API answer."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # It takes ?format= only: drf-spectacular's ?version= relabelled v1's document ("1 (2)").
        valid_query(serializers.Serializer, request)

    def handle_exception(self, exc: Exception) -> Response:
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)


class ApiDocsView(SpectacularSwaggerSplitView):
    """Swagger UI (assets from drf-spectacular-sidecar); anonymous browsers go to the login page.
    The split view serves the init script from a URL: the Content-Security-Policy allows no inline script."""

    template_name = "api/swagger_ui.html"

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, drf_exceptions.NotAuthenticated):
            return redirect_to_login(self.request.get_full_path())  # type: ignore[return-value]
        return super().handle_exception(exc)
