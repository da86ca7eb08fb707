"""GET /api/v1/jobs/<id>/wait: answers when the job is final or the timeout passes."""

from __future__ import annotations

import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import connection

from jobs.models import Job
from jobs.runner import run_job
from pulse_site.live.services import team_group
from tests.conftest import token_client

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


def in_thread(target) -> threading.Thread:
    def run() -> None:
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_final_job_is_returned_at_once(acme, submit):
    job = submit("pulse.noop")
    run_job(job.public_id)
    started = time.monotonic()
    response = token_client(acme, "read").get(f"/api/v1/jobs/{job.public_id}/wait?timeout=30")
    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    assert response.json()["id"] == job.public_id
    assert time.monotonic() - started < 5


def test_an_unfinished_job_is_returned_as_it_is_when_the_timeout_passes(acme, submit, settings):
    settings.PULSE_WAIT_POLL_SECONDS = 0.05
    job = submit("pulse.noop")
    started = time.monotonic()
    response = token_client(acme, "read").get(f"/api/v1/jobs/{job.public_id}/wait?timeout=0.3")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    assert "payload" in response.json()  # the same shape as GET /jobs/<id>/


def test_a_job_finishing_during_the_wait_is_returned_final_by_the_poll(acme, submit, settings):
    settings.PULSE_WAIT_POLL_SECONDS = 0.05
    job = submit("pulse.noop")
    worker = in_thread(lambda: run_job(job.public_id))
    started = time.monotonic()
    response = token_client(acme, "read").get(f"/api/v1/jobs/{job.public_id}/wait?timeout=20")
    worker.join()
    assert response.json()["status"] == "completed"
    assert time.monotonic() - started < 15


@pytest.mark.skipif(isinstance(get_channel_layer(), InMemoryChannelLayer),
                    reason="the in-memory layer's queues belong to one event loop, and this test sends from "
                           "another thread's loop; the poll covers that case (previous test)")
def test_a_final_event_on_the_channel_layer_wakes_the_wait_before_any_poll(acme, submit, settings):
    settings.PULSE_WAIT_POLL_SECONDS = 60  # only the event can end this wait in time
    job = submit("pulse.noop")
    done = threading.Event()

    def finish_and_announce() -> None:
        run_job(job.public_id)
        layer = get_channel_layer()
        deadline = time.monotonic() + 10
        # The waiter subscribes when its request arrives; announce until it has answered.
        while not done.is_set() and time.monotonic() < deadline:
            async_to_sync(layer.group_send)(team_group(acme.pk), {
                "type": "event.message", "event": {"id": 0, "kind": "job.completed", "subject": job.public_id}})
            done.wait(0.1)

    worker = in_thread(finish_and_announce)
    started = time.monotonic()
    response = token_client(acme, "read").get(f"/api/v1/jobs/{job.public_id}/wait?timeout=30")
    done.set()
    worker.join()
    assert response.json()["status"] == "completed"
    assert time.monotonic() - started < 10


def test_the_route_works_without_the_trailing_slash_too(acme, submit):
    job = submit("pulse.noop")
    run_job(job.public_id)
    client = token_client(acme, "read")
    assert client.get(f"/api/v1/jobs/{job.public_id}/wait").json()["status"] == "completed"
    assert client.get(f"/api/v1/jobs/{job.public_id}/wait/").json()["status"] == "completed"


def test_a_timeout_outside_0_to_60_seconds_is_refused(acme, submit):
    job = submit("pulse.noop")
    client = token_client(acme, "read")
    for timeout in ["0", "-1", "61", "abc", "nan", "inf"]:
        response = client.get(f"/api/v1/jobs/{job.public_id}/wait?timeout={timeout}")
        assert response.status_code == 400, timeout
        assert response.json()["error"]["fields"] == {"timeout": ["Seconds, more than 0 and at most 60."]}


def test_charlie_cannot_wait_on_acmes_job(acme, globex, submit):
    job = submit("pulse.noop")
    started = time.monotonic()
    response = token_client(globex, "read").get(f"/api/v1/jobs/{job.public_id}/wait?timeout=5")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert time.monotonic() - started < 4


def test_an_anonymous_wait_is_refused(acme, client, submit):
    job = submit("pulse.noop")
    assert client.get(f"/api/v1/jobs/{job.public_id}/wait?timeout=1").status_code == 401


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_another_method_on_the_wait_is_a_405_in_the_error_shape_not_the_csrf_page(acme, submit, method):
    """Sent as a script sends it (no cookie, so no CSRF token), a POST met Django's HTML 403 CSRF
    page: the async view was not exempt, as DRF's views are (a session's CSRF is DRF's check)."""
    from django.test import Client

    from pulse_site.teams.services import token_create

    job = submit()
    _, secret = token_create(team=acme, name="script", access="write", expires_at=None, by=None)
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = getattr(client, method)(f"/api/v1/jobs/{job.public_id}/wait/")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
