"""Riding out a database outage: what counts as one, and how a process waits it out.

PostgreSQL restarting, failing over or unreachable for a while is not a bug in Pulse and must not
look like one: the API answers 503 `database_unavailable` with Retry-After (not a 500), pages answer
503 (`server_error`, the handler500), and workers and tickers keep running and carry on once the database answers again. Django
discards a broken connection only at a request boundary (`close_old_connections`); long-running
loops call `discard_broken_connections()` after a failure to get the same.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.conf import settings
from django.core.exceptions import DisallowedHost, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

log = logging.getLogger("pulse.outage")
T = TypeVar("T")

RETRY_AFTER_SECONDS = 5
LOCK_CONFLICT_TRIES = 5
# Server-side refusals that are about the statement, not the connection: never waited out.
_NOT_AN_OUTAGE = ("40001", "40P01", "23", "22", "42")  # serialization, deadlock, integrity, data, syntax
LOCK_CONFLICTS = ("40P01", "40001")  # deadlock_detected, serialization_failure
_SQLITE_OUTAGES = ("unable to open database file", "database is locked", "disk I/O error")


def is_database_outage(exc: BaseException) -> bool:
    """True for a lost or refused database connection (an outage), False for an error a retry of
    the same statement would hit again."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if isinstance(cause, sqlite3.Error):
        # SQLite reports a missing table the same way as a missing file: only these are outages.
        return any(text in str(cause) for text in _SQLITE_OUTAGES)
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate:
        # 08xxx connection exceptions, 57P0x admin/crash shutdown, 53xxx out of resources.
        return not sqlstate.startswith(_NOT_AN_OUTAGE)
    # No SQLSTATE: the client library could not reach the server, or the connection broke.
    return True


def is_lock_conflict(exc: BaseException) -> bool:
    """True when PostgreSQL rolled the transaction back to break a deadlock or a serialization
    conflict: nothing of it was written, and running it again is the documented cure."""
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else None
    return getattr(cause, "sqlstate", None) in LOCK_CONFLICTS


def discard_broken_connections() -> None:
    """Close this thread's connections that errored (outside a transaction): the next query
    reconnects instead of failing on a dead socket forever."""
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            continue
        conn.close_if_unusable_or_obsolete()


def retry_through_outage(func: Callable[[], T], *, what: str, give_up_after: float,
                         first_wait: float = 0.25, longest_wait: float = 2.0) -> T:
    """Call `func` until it gets past a database outage, waiting between tries (doubling up to
    `longest_wait`) for at most `give_up_after` seconds; then the outage error is raised.

    A deadlock or serialization failure (the database rolled the transaction back) is run again at
    once, up to LOCK_CONFLICT_TRIES times. Only for a `func` that is safe to run again after a
    failure (its own transaction, a claim).
    """
    deadline = time.monotonic() + give_up_after
    wait = first_wait
    failures = 0
    conflicts = 0
    while True:
        try:
            result = func()
        except DatabaseError as exc:
            if is_lock_conflict(exc) and conflicts < LOCK_CONFLICT_TRIES:
                # The database chose this transaction as a deadlock's victim and rolled it back:
                # run it again at once (the other one has its locks now and will finish).
                conflicts += 1
                log.warning("%s: %s; running it again", what, exc.__class__.__name__)
                continue
            if not is_database_outage(exc) or time.monotonic() + wait > deadline:
                raise
            failures += 1
            if failures == 1:
                log.warning("%s: database unavailable (%s); retrying for up to %.0f s", what, exc, give_up_after)
            discard_broken_connections()
            time.sleep(wait)
            wait = min(longest_wait, wait * 2)
            continue
        if failures:
            log.warning("%s: done after %d failed tries (database back)", what, failures)
        return result


def _for_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _api_error(code: str, message: str, status: int) -> HttpResponse:
    # The API's error shape, as a plain Django response: these answers come from Django's
    # handlers, outside any API view. (Imported here: pulse_site.api imports this module.)
    from pulse_site.api import error_body

    return JsonResponse(error_body(code, message), status=status)


def server_error(request: HttpRequest) -> HttpResponse:
    """`handler500`: an uncaught database outage (in a view or a middleware such as the team
    lookup) answers 503 with Retry-After; anything else is Django's 500 page (under /api/, the
    API's error shape)."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DatabaseError) and is_database_outage(exc):
        message = "The database is unavailable for a moment. Try again in a few seconds."
        if _for_api(request):
            response = _api_error("database_unavailable", message, 503)
        else:
            response = HttpResponse(message + "\n", status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if _for_api(request):
        return _api_error("server_error", "Something went wrong on our side; it has been logged.", 500)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """`handler400`: a request refused before any view (a Host not served here, a malformed
    header): the 400 page, or under /api/ the API's error shape."""
    if _for_api(request):
        return _api_error("bad_request", _bad_request_reason(exception), 400)
    return defaults.bad_request(request, exception)


def _bad_request_reason(exception: Exception) -> str:
    if isinstance(exception, DisallowedHost):
        return "This host name is not served here."
    if isinstance(exception, TooManyFieldsSent):
        return f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} query parameters or form fields."
    return "The request could not be read."
