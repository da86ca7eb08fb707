"""The bench starts the PostgreSQL and Redis it needs when they are not running, as on this machine,
and stops them again. The shared servers are left alone: the test gives the bench a PostgreSQL
cluster of its own (made with pg_createcluster, dropped after) and a Redis port nobody uses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from bench.services import _answers
from tests.fault.proxy import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES or not settings.REDIS_URL,
                       reason="the bench runs on PostgreSQL and Redis"),
    pytest.mark.skipif(any(shutil.which(c) is None for c in ("pg_createcluster", "pg_ctlcluster", "redis-server")),
                       reason="needs the Debian PostgreSQL cluster tools and redis-server"),
    pytest.mark.skipif(os.geteuid() != 0, reason="pg_createcluster runs as root"),
]


def _postgres_version() -> str:
    return sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[-1]


@pytest.fixture
def stopped_cluster():
    """A PostgreSQL cluster of the test's own, created and left stopped: its port answers nothing."""
    version, name, port = _postgres_version(), f"bench{uuid.uuid4().hex[:6]}", free_port()
    subprocess.run(["pg_createcluster", version, name, "--port", str(port), "--", "--auth=trust"], check=True,
                   capture_output=True)
    try:
        yield port
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, name], check=False, capture_output=True)


@pytest.mark.timeout(300)
def test_the_bench_starts_what_is_not_running_and_stops_it_after(stopped_cluster, tmp_path):
    pg_port, redis_port = stopped_cluster, free_port()
    assert not _answers("127.0.0.1", pg_port) and not _answers("127.0.0.1", redis_port)
    bench = subprocess.run(
        [sys.executable, "manage.py", "pulse_bench", "--smoke", "--only", "throughput", "--repeat", "1",
         "--database-url", f"postgres://postgres@127.0.0.1:{pg_port}/pulse_bench",
         "--redis-url", f"redis://127.0.0.1:{redis_port}/0", "--prefix", "svc", "--log-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    assert bench.returncode == 0, bench.stdout[-2000:] + bench.stderr[-3000:]
    assert f"Starting PostgreSQL {_postgres_version()}/" in bench.stdout
    assert f"Starting redis-server on port {redis_port}" in bench.stdout
    assert "throughput  redis broker" in bench.stdout and "throughput  orm broker" in bench.stdout
    # Both stopped again: nothing of the bench keeps running.
    assert not _answers("127.0.0.1", pg_port)
    assert not _answers("127.0.0.1", redis_port)


def test_a_remote_server_that_does_not_answer_is_a_clear_error(tmp_path):
    port = free_port()
    bench = subprocess.run(
        [sys.executable, "manage.py", "pulse_bench", "--smoke", "--only", "throughput",
         "--database-url", f"postgres://postgres@192.0.2.1:{port}/pulse_bench", "--log-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert bench.returncode == 1
    assert f"PostgreSQL at 192.0.2.1:{port} does not answer (the bench starts only a local one)" in bench.stderr
    assert "Traceback" not in bench.stderr
