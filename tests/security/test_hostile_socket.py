"""The WebSocket route /ws/ (not in the HTTP URL walk of test_hostile_access): another team's member
(session) and token, following every one of Acme's real job ids and replaying the outbox from the
start, receive nothing of Acme; Acme's own socket following the same ids receives them."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import connections

from jobs.runner import run_job
from jobs.services import job_cancel, job_submit
from pulse_site.live.models import Event
from pulse_site.live.relay import relay_pending
from pulse_site.teams.services import token_create
from tests.live.conftest import bearer_headers, open_socket, session_headers

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


@pytest.fixture(autouse=True)
async def _no_lingering_connections():
    yield
    # asgiref's sync thread keeps its connection; PostgreSQL would refuse to drop the test database.
    await db(connections.close_all)()


def _acme_work(acme) -> list[str]:
    """Real jobs with real events: one run to the end, one cancelled, one left queued."""
    done = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    run_job(done.public_id)
    cancelled = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    job_cancel(job=cancelled, by="alice")
    queued = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    return [done.public_id, cancelled.public_id, queued.public_id]


async def _frames(socket) -> list[dict]:
    frames = []
    while not await socket.receive_nothing(timeout=0.3):
        frames.append(await socket.receive_json_from(timeout=5))
    return frames


async def _follow_all(socket, job_ids: list[str]) -> list[dict]:
    """Follow each id in turn (a socket follows one job at a time) and collect what arrives."""
    frames = []
    for job_id in job_ids:
        await socket.send_json_to({"type": "follow", "job": job_id})
        frames += await _frames(socket)
    return frames


def _acme_frames(frames: list[dict], acme_job_ids: list[str], acme_public_id: str) -> list[dict]:
    return [f for f in frames if f.get("type") == "event"
            and (f.get("subject") in acme_job_ids or acme_public_id in str(f))]


@pytest.mark.parametrize("how", ["session", "token"])
async def test_another_team_following_acmes_job_ids_over_the_socket_gets_nothing(how, alice, charlie, acme, globex):
    await db(relay_pending)()  # the relay's cursor now, after the cast's own events
    if how == "session":
        headers = await db(session_headers)(charlie)
    else:
        _, secret = await db(token_create)(team=globex, name="globex", access="write", expires_at=None, by=None)
        headers = bearer_headers(secret)
    theirs = await open_socket([*headers], path="/ws/?since=0")  # replay their whole outbox too
    ours = await open_socket(await db(session_headers)(alice))
    replayed = await _frames(theirs)
    assert replayed[0]["type"] == "hello" and replayed[0]["team"] == globex.public_id
    await _frames(ours)

    # Acme's jobs are created, run and cancelled while both sockets follow their ids.
    job_ids = await db(_acme_work)(acme)
    await _follow_all(ours, job_ids[:1])
    await theirs.send_json_to({"type": "follow", "job": job_ids[0]})
    # Told there is no such job in their team, as for an id that never existed.
    assert await theirs.receive_json_from(timeout=5) == {
        "type": "error", "error": {"code": "not_found", "message": "job: no such job in this team."}}
    await db(relay_pending)()
    seen_by_them = replayed + await _frames(theirs) + await _follow_all(theirs, job_ids)
    seen_by_us = await _frames(ours)

    assert await db(Event.objects.filter(team=acme, subject__in=job_ids).count)() >= 6
    assert _acme_frames(seen_by_them, job_ids, acme.public_id) == []
    assert all(f["type"] in ("hello", "error", "pong") or f.get("subject") not in job_ids for f in seen_by_them)
    # Acme's own socket, following the first job, does get its events: the test can see a leak.
    assert {f["subject"] for f in seen_by_us if f.get("type") == "event" and f["kind"].startswith("job.")} == {job_ids[0]}

    # A socket reconnecting with ?since=0 afterwards replays only its own team's events.
    again = await open_socket([*headers], path="/ws/?since=0")
    assert _acme_frames(await _frames(again), job_ids, acme.public_id) == []
    for socket in (theirs, ours, again):
        await socket.disconnect()
