"""GET /health/: what a load balancer or supervisor asks the web process, without signing in: 200
while the database and the cache (Redis, with REDIS_URL) answer, 503 naming the one that does not."""

from __future__ import annotations

import socket

import pytest
from django.test import Client, override_settings

from tests.fault.proxy import database_away

pytestmark = pytest.mark.django_db(transaction=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_it_answers_200_without_signing_in_while_database_and_cache_answer():
    response = Client().get("/health/")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "cache": "ok"}


def test_it_answers_503_while_the_database_is_away():
    with database_away():
        response = Client(raise_request_exception=False).get("/health/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"database": "unavailable", "cache": "ok"}


def test_it_answers_503_while_redis_is_away():
    away = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0"}}
    with override_settings(CACHES=away):
        response = Client(raise_request_exception=False).get("/health/")
    assert response.status_code == 503
    assert response.json() == {"database": "ok", "cache": "unavailable"}


@override_settings(SECURE_SSL_REDIRECT=True)
def test_a_plain_http_probe_is_answered_under_tls_while_pages_redirect():
    assert Client().get("/login/").status_code == 301
    assert Client().get("/health/").status_code == 200


def test_a_probe_may_ask_with_head():
    """Some load balancers probe with HEAD: the same status, no body."""
    response = Client().head("/health/")
    assert response.status_code == 200 and response.content == b""
    assert Client().post("/health/").status_code == 405

