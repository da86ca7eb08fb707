"""`http.request`: call a URL, record status and timing. Refuses internal addresses (no SSRF)."""

from __future__ import annotations

import ipaddress
import socket
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from jobs.error_codes import ErrorCode, JobError
from jobs.handlers.context import JobContext
from jobs.handlers.registry import handler

MAX_BODY_KEPT = 10_000


def _estimate(payload: dict[str, Any]) -> Decimal:
    return Decimal(str(payload.get("cost", settings.PULSE_HTTP_REQUEST_COST)))


def _allowed_by_setting(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    for entry in settings.PULSE_HTTP_ALLOWLIST:
        if entry.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_destination(url: str) -> None:
    """Refuse URLs that resolve to loopback, private, link-local or otherwise internal addresses.

    Every address the name resolves to is checked, so a name with one public and one private
    record is refused too. Redirects are not followed, so a public URL cannot bounce inward.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobError(ErrorCode.VALIDATION_ERROR, f"Only http(s) URLs with a host are allowed: {url!r}")
    host = parts.hostname
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise JobError(ErrorCode.NETWORK_ERROR, f"Cannot resolve {host}: {exc}") from None
    for info in infos:
        refusal = _internal_refusal(host, ipaddress.ip_address(info[4][0]))
        if refusal:
            raise JobError(ErrorCode.VALIDATION_ERROR, refusal, retryable=False)


def _internal_refusal(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if (address.is_global and not address.is_multicast) or _allowed_by_setting(host, address):
        return None
    where = f"{host} is" if host == str(address) else f"{host} resolves to {address},"
    return f"{where} an internal address; add it to PULSE_HTTP_ALLOWLIST to allow it."


def destination_refusal_known_now(url: str) -> str | None:
    """What check_destination would refuse that is known without asking DNS (whose answer the
    workers get at delivery): a literal internal address, or a localhost name. For a form to say
    at once; the delivery checks every address the name resolves to then."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return _internal_refusal(host, ipaddress.ip_address("127.0.0.1"))
    try:
        return _internal_refusal(host, ipaddress.ip_address(host))
    except ValueError:
        return None


@handler(
    "http.request",
    title="HTTP request",
    description="Calls a URL with a method, headers and an optional JSON body; records the status, "
    "timing and the start of the response. Internal addresses are refused unless allow-listed.",
    schema={
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "format": "uri", "maxLength": 2000, "pattern": "^https?://"},
            "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], "default": "GET"},
            "headers": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 4000},
                        "maxProperties": 50},
            "json": {},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "default": 10},
            "cost": {"type": "string", "pattern": r"^\d+(\.\d{1,6})?$"},
        },
        "additionalProperties": False,
    },
    cost=_estimate,
    timeout=180,
    max_attempts=3,
    retry_on=[ErrorCode.NETWORK_ERROR, ErrorCode.TIMEOUT],
)
def request(ctx: JobContext) -> dict[str, Any]:
    payload = ctx.payload
    url = payload["url"]
    method = payload["method"]
    check_destination(url)
    ctx.log(f"{method} {url}", stage="request")
    started = time.monotonic()
    try:
        with httpx.Client(timeout=float(payload["timeout"]), follow_redirects=False) as client:
            response = client.request(method, url, headers=payload.get("headers") or {},
                                      json=payload.get("json") if "json" in payload else None)
    except httpx.TimeoutException as exc:
        raise JobError(ErrorCode.TIMEOUT, f"{method} {url} timed out: {exc}") from None
    except httpx.HTTPError as exc:
        raise JobError(ErrorCode.NETWORK_ERROR, f"{method} {url} failed: {exc}") from None
    elapsed_ms = int((time.monotonic() - started) * 1000)
    ctx.report_cost(_estimate(payload))
    ctx.log(f"HTTP {response.status_code} in {elapsed_ms} ms", stage="request")
    result = {
        "status": response.status_code,
        "elapsed_ms": elapsed_ms,
        "headers": dict(response.headers),
        "body": response.text[:MAX_BODY_KEPT],
    }
    if response.status_code >= 500:
        raise JobError(ErrorCode.NETWORK_ERROR, f"{method} {url} answered {response.status_code}",
                       details=result)
    if response.status_code >= 400:
        raise JobError(ErrorCode.VALIDATION_ERROR, f"{method} {url} answered {response.status_code}",
                       details=result, retryable=False)
    return result
