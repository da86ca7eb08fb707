"""Waiting for a job to finish without holding a worker thread or a database connection.

The wait subscribes a fresh channel to the team's live group (the relay forwards every job event
there) and wakes on the job's own final event; it also re-reads the job every
PULSE_WAIT_POLL_SECONDS, so a relay that is behind or down only makes the answer later, never
wrong. Between reads the connection is closed: a thousand clients waiting on long jobs must not
pin a thousand PostgreSQL connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from jobs.models import Job
from pulse_site.live.services import team_group

FINAL_KINDS = frozenset(f"job.{status}" for status in Job.FINAL)


def release_connection() -> None:
    """Close this thread's connection unless a transaction needs it (tests run inside one)."""
    if not connection.in_atomic_block:
        connection.close()


def _read(job_pk: int, render: Callable[[Job], dict[str, Any]]) -> tuple[bool, dict[str, Any]]:
    try:
        job = Job.objects.select_related("parent").get(pk=job_pk)
        return job.is_final, render(job)
    finally:
        release_connection()


async def _final_event(layer: Any, channel: str, public_id: str) -> None:
    """Returns when the job's final event arrives on `channel`."""
    while True:
        event = (await layer.receive(channel) or {}).get("event") or {}
        if event.get("subject") == public_id and event.get("kind") in FINAL_KINDS:
            return


# Cancelling a receive or leaving a group on Redis pub/sub can hang in its cleanup (channels_redis
# #319, redis-py #3941; seen here once under load as a wait that never answered). The wait never
# waits on either for longer than this: a receive is cancelled, and a leave given this long,
# without waiting for their cleanup (asyncio.wait_for would wait for it).
CLEANUP_SECONDS = 2.0


async def job_wait_final(*, job_pk: int, team_id: int, public_id: str, timeout: float,
                         render: Callable[[Job], dict[str, Any]]) -> dict[str, Any]:
    """The job rendered by `render` once it is final, or as it is when `timeout` seconds passed."""
    read = sync_to_async(_read, thread_sensitive=False)
    deadline = time.monotonic() + timeout
    layer = get_channel_layer()
    channel = await layer.new_channel() if layer is not None else None
    group = team_group(team_id)
    woken: asyncio.Future[None] | None = None
    if layer is not None and channel is not None:
        # Subscribed before the first read, so a final event between the read and the wait is not missed.
        await layer.group_add(group, channel)
        woken = asyncio.ensure_future(_final_event(layer, channel, public_id))
    try:
        final, body = await read(job_pk, render)
        while not final:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            poll = min(remaining, settings.PULSE_WAIT_POLL_SECONDS)
            if woken is None or woken.done():
                await asyncio.sleep(poll)
            else:
                await asyncio.wait({woken}, timeout=poll)
            final, body = await read(job_pk, render)
        return body
    finally:
        if woken is not None:
            woken.cancel()
        if layer is not None and channel is not None:
            await asyncio.wait({asyncio.ensure_future(layer.group_discard(group, channel))}, timeout=CLEANUP_SECONDS)
