"""`http.request`: call a URL, record status and timing. Refuses internal addresses (no SSRF)."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from jobs.error_codes import ErrorCode, JobError
from jobs.handlers.context import JobContext
from jobs.handlers.registry import handler, shipped_timeout

MAX_BODY_KEPT = 10_000


def _estimate(payload: dict[str, Any]) -> Decimal:
    return Decimal(str(payload.get("cost", settings.PULSE_HTTP_REQUEST_COST)))


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# NAT64 prefixes (RFC 6052, RFC 8215): the last 32 bits are the IPv4 address a gateway takes it to.
NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def _allowed_by_setting(host: str, address: Address) -> bool:
    for entry in settings.PULSE_HTTP_ALLOWLIST:
        if entry.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _carried_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to through a translator or tunnel (NAT64, 6to4,
    Teredo's client, IPv4-mapped), which Python counts as global whatever it carries."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if any(address in network for network in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)


@dataclass(frozen=True)
class Destination:
    """A checked URL and where to send it: the address its name resolved to when checked, not
    what it resolves to a moment later (a name can answer a public address to the check and an
    internal one to the connection: DNS rebinding). The request keeps the name as its Host and,
    over TLS, as the name the certificate is checked against."""

    url: str  # the URL with the checked address as its host
    host: str  # the URL's own host[:port], for the Host header
    extensions: dict[str, Any]  # httpx's: the TLS server name

    def headers(self, given: dict[str, str] | None = None) -> dict[str, str]:
        """`given` with the Host the URL names (unless one is given)."""
        given = dict(given or {})
        if not any(name.lower() == "host" for name in given):
            given["Host"] = self.host
        return given


def check_destination(url: str) -> Destination:
    """Refuse URLs that resolve to loopback, private, link-local or otherwise internal addresses;
    the Destination to send the request to.

    Every address the name resolves to is checked, so a name with one public and one private
    record is refused too; the request goes to the first, as checked. Redirects are not
    followed, so a public URL cannot bounce inward.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobError(ErrorCode.VALIDATION_ERROR, f"Only http(s) URLs with a host are allowed: {url!r}")
    host = parts.hostname
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise JobError(ErrorCode.NETWORK_ERROR, f"Cannot resolve {host}: {exc}") from None
    except ValueError as exc:  # a port past 65535
        raise JobError(ErrorCode.VALIDATION_ERROR, f"Not a usable URL: {url!r} ({exc})", retryable=False) from None
    addresses = [ipaddress.ip_address(str(info[4][0])) for info in infos]
    for address in addresses:
        refusal = _internal_refusal(host, address)
        if refusal:
            raise JobError(ErrorCode.VALIDATION_ERROR, refusal, retryable=False)
    given = httpx.URL(url)
    return Destination(url=str(given.copy_with(host=str(addresses[0]))), host=given.netloc.decode("ascii"),
                       extensions={"sni_hostname": given.raw_host.decode("ascii")} if given.scheme == "https" else {})


def _internal_refusal(host: str, address: Address) -> str | None:
    carried = _carried_ipv4(address)
    if carried is not None and not (carried.is_global and not carried.is_multicast) and not (
            _allowed_by_setting(host, carried) or _allowed_by_setting(host, address)):
        where = f"{host}" if host == str(address) else f"{host} resolves to {address}, which"
        return f"{where} carries {carried}, an internal address; add it to PULSE_HTTP_ALLOWLIST to allow it."
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
    timeout=shipped_timeout(180),
    max_attempts=3,
    retry_on=[ErrorCode.NETWORK_ERROR, ErrorCode.TIMEOUT],
)
def request(ctx: JobContext) -> dict[str, Any]:
    payload = ctx.payload
    url = payload["url"]
    method = payload["method"]
    destination = check_destination(url)
    ctx.log(f"{method} {url}", stage="request")
    started = time.monotonic()
    try:
        with httpx.Client(timeout=float(payload["timeout"]), follow_redirects=False) as client:
            response = client.request(method, destination.url, headers=destination.headers(payload.get("headers")),
                                      json=payload.get("json") if "json" in payload else None,
                                      extensions=destination.extensions)
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
