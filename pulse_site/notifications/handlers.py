"""`pulse.notify`: one delivery to one target, as a Pulse job (retried with backoff, listed
with the team's jobs, never run inside the job that caused it)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import send_mail

from jobs.error_codes import ErrorCode, JobError
from jobs.handlers.context import JobContext
from jobs.handlers.http import check_destination
from jobs.handlers.registry import handler

NOTIFY_HANDLER = "pulse.notify"
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
    check_destination(url)
    body = json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Pulse-Timestamp": timestamp,
               "X-Pulse-Signature": f"sha256={sign(secret, timestamp, body)}"}
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=10, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise JobError(ErrorCode.NETWORK_ERROR, f"POST {url} failed: {exc}", retryable=True) from None
    if response.status_code >= 300:
        raise JobError(ErrorCode.NETWORK_ERROR, f"POST {url} answered {response.status_code}",
                       retryable=response.status_code >= 500 or response.status_code == 429)
    return {"status": response.status_code}


# Internal: a delivery is Pulse's to send (a rule, a watch, a test send), to a target only owners
# and admins manage; a team submitting one itself would bypass them and be signed as Pulse.
@handler(NOTIFY_HANDLER, title="Send a notification", cost="0", schema=SCHEMA, timeout=60, max_attempts=5,
         retry_on=[ErrorCode.NETWORK_ERROR], backoff_base=5.0, backoff_cap=300.0, internal=True)
def notify(ctx: JobContext) -> dict[str, Any]:
    from jobs.models import Job
    from pulse_site.notifications.models import Target

    payload = ctx.payload
    team_id = Job.objects.values_list("team_id", flat=True).get(public_id=ctx.job_id)
    target = Target.objects.filter(team_id=team_id, public_id=payload["target"]).first()
    if target is None:
        raise JobError(ErrorCode.VALIDATION_ERROR, "The notification target no longer exists.", retryable=False)
    message = {"subject": payload["subject"], "text": payload.get("text", ""), "event": payload["event"],
               "target": target.public_id}
    if target.kind == Target.Kind.EMAIL:
        send_mail(payload["subject"], payload.get("text", "") or payload["subject"], settings.DEFAULT_FROM_EMAIL,
                  [target.address])
        return {"email": target.address}
    return _deliver_webhook(target.address, target.secret, message)
