"""`pulse.notify`: one delivery to one target, as a Pulse job (retried with backoff, listed
with the team's jobs, never run inside the job that caused it)."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import send_mail

from jobs.error_codes import ErrorCode, JobError
from jobs.handlers.context import JobContext
from jobs.handlers.http import check_destination
from jobs.handlers.registry import handler, shipped_timeout
from pulse_site.notifications.addresses import mask_urls_in

NOTIFY_HANDLER = "pulse.notify"
# A test send's event kind: the one delivery a disabled target still gets.
TEST_KIND = "test"
SCHEMA = {
    "type": "object",
    "required": ["target", "subject", "event"],
    "properties": {
        "target": {"type": "string"},
        "subject": {"type": "string", "maxLength": 200},
        "text": {"type": "string", "maxLength": 5000},
        "event": {"type": "object"},
    },
}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 of `timestamp.body` with the target's secret, hex; receivers recompute it and
    refuse old timestamps, so a captured request cannot be replayed later."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _deliver_webhook(url: str, secret: str, message: dict[str, Any]) -> dict[str, Any]:
    """POST `message` to `url`. Its errors name the URL masked (mask_urls_in): the path or query
    may be the receiver's secret, and a delivery's errors are read by everyone in the team (its
    history, the jobs list, events), and kept in its attempts' tracebacks."""
    try:
        return _post_webhook(url, secret, message)
    except JobError as exc:
        raise JobError(exc.code, mask_urls_in(exc.message), details=exc.details, retryable=exc.retryable) from None
    except Exception as exc:
        # What the runner would record of an unexpected error (httpx's InvalidURL names the URL).
        raise JobError(ErrorCode.UNKNOWN, mask_urls_in(f"{type(exc).__name__}: {exc}")) from None


def _post_webhook(url: str, secret: str, message: dict[str, Any]) -> dict[str, Any]:
    destination = check_destination(url)
    body = json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Pulse-Timestamp": timestamp,
               "X-Pulse-Signature": f"sha256={sign(secret, timestamp, body)}"}
    try:
        # Streamed and closed unread: the status is the answer, and a receiver trickling a body
        # (or sending a large one) must not hold the delivery until its job's timeout.
        with httpx.Client(timeout=10, follow_redirects=False) as client, client.stream(
                "POST", destination.url, content=body, headers=destination.headers(headers),
                extensions=destination.extensions) as response:
            status = response.status_code
    except httpx.HTTPError as exc:
        raise JobError(ErrorCode.NETWORK_ERROR, f"POST {url} failed: {exc}", retryable=True) from None
    if 300 <= status < 400:
        # Not followed: a public URL must not bounce a signed delivery inward (check_destination).
        raise JobError(ErrorCode.NETWORK_ERROR, f"POST {url} answered {status}: redirects are not followed; "
                                                "point the target at the final URL.", retryable=False)
    if status >= 300:
        raise JobError(ErrorCode.NETWORK_ERROR, f"POST {url} answered {status}",
                       retryable=status >= 500 or status == 429)
    return {"status": status}


def _deliver_mail(address: str, subject: str, text: str) -> dict[str, Any]:
    try:
        send_mail(subject, text or subject, settings.DEFAULT_FROM_EMAIL, [address])
    except (OSError, smtplib.SMTPException) as exc:
        # The mail server refused, hung up or cannot be reached: as a webhook's network error,
        # tried again with backoff.
        raise JobError(ErrorCode.NETWORK_ERROR, f"Mail to {address} through {settings.EMAIL_HOST}:"
                                                f"{settings.EMAIL_PORT} failed: {exc!r}", retryable=True) from None
    return {"email": address}


def _refuse_deactivated_address(team_id: int, address: str) -> None:
    """A deactivated user hears nothing from the team while they are (as their tokens get 401):
    mail to an address only they have in the team is not sent, test sends included, and goes
    again once they are reactivated. Checked as each delivery runs, so one queued before the
    deactivation is not sent either."""
    from pulse_site.notifications.selectors import address_deactivated_members

    names = address_deactivated_members(team_id=team_id, address=address)
    if names:
        users = "user is" if len(names) == 1 else "users are"
        raise JobError(ErrorCode.VALIDATION_ERROR,
                       f"Nothing was sent: {address} is the address of {' and '.join(names)} in this team, whose "
                       f"{users} deactivated; mail goes to it again once reactivated.", retryable=False)


# Internal: a delivery is Pulse's to send (a rule, a watch, a test send), to a target only owners
# and admins manage; a team submitting one itself would bypass them and be signed as Pulse.
# Retried on what trying again may cure: the receiver's network errors, 5xx and 429, a run past
# the timeout, a worker lost mid-delivery (receivers dedupe on the body's `delivery`).
@handler(NOTIFY_HANDLER, title="Send a notification", cost="0", schema=SCHEMA, timeout=shipped_timeout(60),
         max_attempts=5, retry_on=[ErrorCode.NETWORK_ERROR, ErrorCode.TIMEOUT, ErrorCode.WORKER_LOST], backoff_base=5.0,
         backoff_cap=300.0, internal=True)
def notify(ctx: JobContext) -> dict[str, Any]:
    from jobs.models import Job
    from pulse_site.notifications.models import Target

    payload = ctx.payload
    team_id = Job.objects.values_list("team_id", flat=True).get(public_id=ctx.job_id)
    target = Target.objects.filter(team_id=team_id, public_id=payload["target"]).first()
    if target is None:
        raise JobError(ErrorCode.VALIDATION_ERROR, "The notification target no longer exists.", retryable=False)
    if not target.enabled and payload["event"].get("kind") != TEST_KIND:
        # Disabled after this delivery was queued (or while it waited to be tried again): it
        # hears nothing from rules or watches from then on. A test send still goes.
        raise JobError(ErrorCode.VALIDATION_ERROR, f"The target {target.name} is disabled: nothing was sent.",
                       retryable=False)
    if target.kind == Target.Kind.EMAIL:
        _refuse_deactivated_address(team_id, target.address)
        return _deliver_mail(target.address, payload["subject"], payload.get("text", ""))
    message = {"delivery": ctx.job_id, "target": target.public_id, "subject": payload["subject"],
               "text": payload.get("text", ""), "event": payload["event"]}
    return _deliver_webhook(target.address, target.secret, message)
