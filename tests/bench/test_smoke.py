"""The bench's smoke mode end to end: it keeps working, and every measurement produces sane
numbers. No timing is asserted (DESIGN.md §6): speed is reported by the bench, not tested."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="the bench runs on PostgreSQL only"),
    pytest.mark.skipif(not settings.REDIS_URL, reason="the bench runs plain django-q2 on the Redis broker too"),
]


def _bench_database_url(name: str) -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    auth = f"{user}:{db['PASSWORD']}" if db.get("PASSWORD") else user
    return urlunparse(urlparse(f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{name}"))


def _database_exists(url: str, name: str) -> bool:
    import psycopg

    admin = urlunparse(urlparse(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


@pytest.mark.timeout(280)
def test_the_smoke_bench_measures_everything_and_cleans_up(tmp_path: Path) -> None:
    tag = f"smoke_{uuid.uuid4().hex[:8]}"
    database = f"pulse_bench_{tag}"
    url = _bench_database_url(database)
    out = tmp_path / "bench.json"
    bench = subprocess.Popen(
        [sys.executable, "manage.py", "pulse_bench", "--smoke", "--repeat", "1", "--json", str(out),
         "--database-url", url, "--redis-url", settings.REDIS_URL, "--prefix", tag, "--log-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        stdout, stderr = bench.communicate(timeout=250)
    except subprocess.TimeoutExpired:
        bench.terminate()  # it stops what it started and drops its database
        stdout, stderr = bench.communicate(timeout=60)
    assert bench.returncode == 0, stdout[-2000:] + stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {(row["measurement"], row["metric"]): row for row in report["rows"]}
    assert {m for m, _ in rows} == {"throughput", "latency", "schedules", "memory", "pages", "live"}

    for row in report["rows"]:
        assert all(math.isfinite(row["pulse"][k]) for k in ("min", "median", "max")), row
    throughput = [row for row in report["rows"] if row["measurement"] == "throughput"]
    assert sorted(row["variant"] for row in throughput) == ["orm broker", "redis broker"]
    for row in throughput:
        assert row["pulse"]["median"] > 0 and row["plain"]["median"] > 0 and row["ratio"] > 0
    assert rows[("latency", "p50_ms")]["pulse"]["median"] > 0
    assert rows[("latency", "p50_ms")]["plain"]["median"] > 0
    assert rows[("schedules", "missed")]["pulse"]["max"] == 0
    assert rows[("schedules", "duplicates")]["pulse"]["max"] == 0
    assert rows[("memory", "rss_total_kb")]["pulse"]["median"] > 10_000
    for metric in ("jobs_first_p95_ms", "jobs_filtered_p95_ms", "overview_p95_ms"):
        assert rows[("pages", metric)]["pulse"]["median"] > 0
    # Every client heard every progress call of its own team's job, and none of another team's.
    assert rows[("live", "p95_ms")]["pulse"]["median"] > 0
    assert rows[("live", "leaks")]["pulse"]["max"] == 0
    assert rows[("live", "missed")]["pulse"]["max"] == 0
    assert "throughput" in stdout and "ratio" in stdout

    # Everything it made is gone: the database and the Redis keys under its prefix.
    assert not _database_exists(url, database)
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    assert list(client.scan_iter(match=f"*{tag}*")) == []
