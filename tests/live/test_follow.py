"""A socket that follows one job gets only that job's job.* events, and every other kind."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from pulse_site.ids import new_public_id
from pulse_site.live.relay import relay_batch
from pulse_site.live.services import event_emit
from tests.live.conftest import open_socket, session_headers

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async
relay = database_sync_to_async(relay_batch)


async def emit(team, kind: str, subject: str):
    return await db(event_emit)(team=team, kind=kind, subject=subject)


async def socket_for(user):
    socket = await open_socket(await db(session_headers)(user))
    assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
    return socket


async def test_a_followed_job_hides_other_jobs_events_but_not_other_kinds(bob, acme, relay_cursor):
    followed, other = await db(submitted)(acme), new_public_id("JB")
    await relay()
    socket = await socket_for(bob)
    await socket.send_json_to({"type": "follow", "job": followed})
    assert await socket.receive_json_from(timeout=5) == {"type": "following", "job": followed}

    await emit(acme, "job.progress", other)
    mine = await emit(acme, "job.progress", followed)
    budget = await emit(acme, "budget.updated", "")
    assert await relay() == 3
    assert (await socket.receive_json_from(timeout=5))["id"] == mine.id
    assert (await socket.receive_json_from(timeout=5))["id"] == budget.id
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


async def test_unfollow_brings_every_jobs_events_back(bob, acme, relay_cursor):
    followed = await db(submitted)(acme)
    await relay()
    socket = await socket_for(bob)
    await socket.send_json_to({"type": "follow", "job": followed})
    assert await socket.receive_json_from(timeout=5) == {"type": "following", "job": followed}
    await socket.send_json_to({"type": "unfollow"})
    assert await socket.receive_json_from(timeout=5) == {"type": "following", "job": None}
    other = await emit(acme, "job.completed", new_public_id("JB"))
    assert await relay() == 1
    assert (await socket.receive_json_from(timeout=5))["id"] == other.id
    await socket.disconnect()


async def test_follow_without_a_job_id_is_an_error_frame_and_changes_nothing(bob, acme, relay_cursor):
    socket = await socket_for(bob)
    await socket.send_json_to({"type": "follow", "job": "not-a-job"})
    frame = await socket.receive_json_from(timeout=5)
    assert frame["type"] == "error" and frame["error"]["code"] == "validation_error"
    event = await emit(acme, "job.started", new_public_id("JB"))
    assert await relay() == 1
    assert (await socket.receive_json_from(timeout=5))["id"] == event.id
    await socket.disconnect()


NO_SUCH_JOB = {"type": "error", "error": {"code": "not_found", "message": "job: no such job in this team."}}


def submitted(team) -> str:
    from jobs.services import job_submit

    return job_submit(team=team, handler="pulse.noop", payload={}, source="api").job.public_id


async def test_following_a_job_that_does_not_exist_is_an_error_and_keeps_what_was_followed(bob, acme, relay_cursor):
    """It was acknowledged ("following") and the socket then heard of no job at all: a mistyped id
    looked like a job with nothing happening."""
    followed = await db(submitted)(acme)
    await relay()
    socket = await socket_for(bob)
    await socket.send_json_to({"type": "follow", "job": followed})
    assert await socket.receive_json_from(timeout=5) == {"type": "following", "job": followed}
    await socket.send_json_to({"type": "follow", "job": new_public_id("JB")})
    assert await socket.receive_json_from(timeout=5) == NO_SUCH_JOB
    await emit(acme, "job.progress", new_public_id("JB"))
    mine = await emit(acme, "job.progress", followed)
    assert await relay() == 2
    assert (await socket.receive_json_from(timeout=5))["id"] == mine.id
    await socket.disconnect()


async def test_charlie_following_an_acme_job_is_told_there_is_no_such_job_and_sees_nothing(charlie, acme, globex, relay_cursor):
    job = await db(submitted)(acme)
    await relay()
    socket = await socket_for(charlie)
    await socket.send_json_to({"type": "follow", "job": job})
    assert await socket.receive_json_from(timeout=5) == NO_SUCH_JOB
    await emit(acme, "job.completed", job)
    assert await relay() == 1
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()
