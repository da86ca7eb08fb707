"""Executor status and stats: one team's figures (overview panel, API) and every team's (system page)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.beats import beat, beats_prune
from jobs.executor import executor_status, executor_system
from jobs.models import Job, JobStat, QueuePause, WorkerBeat
from jobs.pausing import queue_pause
from tests.conftest import token_client
from tests.jobs.test_daemon import cluster  # noqa: F401  (a real qcluster and ticker)

T0 = datetime(2026, 3, 10, 12, 30, 0, tzinfo=UTC)
S = Job.Status
HOUR = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_cache():
    # The rollups before this hour are summed once an hour and cached (jobs.executor._past_sums);
    # every test starts at the same frozen hour with rows of its own. (Teams' keys name their
    # random public id; every team's is the one to forget. Never cache.clear(): on Redis that
    # flushes the database every other process shares.)
    from django.core.cache import cache

    from jobs.executor import past_sums_key

    cache.delete_many([past_sums_key(None, T0 + timedelta(hours=h)) for h in (0, 1)])


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(T0, tick=False)


def job(team, status, completed_ago: float | None = None, **fields) -> Job:
    if completed_ago is not None:
        fields["completed_at"] = T0 - timedelta(seconds=completed_ago)
    return Job.objects.create(team=team, handler="pulse.noop", status=status, **fields)


@pytest.fixture
def history(acme, globex, frozen):
    """Acme: 2 running, 3 queued, 1 held; rollups this hour, last hour and three days ago."""
    for status, n in ((S.RUNNING, 2), (S.QUEUED, 3), (S.PAUSED, 1)):
        for _ in range(n):
            job(acme, status)
    job(acme, S.COMPLETED, completed_ago=10)
    job(acme, S.FAILED, completed_ago=59)
    job(acme, S.COMPLETED, completed_ago=61)
    JobStat.objects.create(team=acme, handler="pulse.noop", hour=HOUR, completed=6, failed=2, run_ms=8_000)
    JobStat.objects.create(team=acme, handler="pulse.fail", hour=HOUR - timedelta(hours=1), completed=10,
                           cancelled=2, run_ms=12_000)
    JobStat.objects.create(team=acme, handler="pulse.noop", hour=HOUR - timedelta(days=3), completed=100,
                           run_ms=100_000)
    # Globex's work is never in Acme's figures.
    job(globex, S.RUNNING)
    job(globex, S.COMPLETED, completed_ago=1)
    JobStat.objects.create(team=globex, handler="pulse.noop", hour=HOUR, completed=50, failed=50, run_ms=1)


def test_a_teams_status_counts_its_unfinished_jobs_and_reads_finished_ones_from_the_rollups(acme, history):
    status = executor_status(team=acme).as_dict()
    assert (status["state"], status["active"], status["queued"], status["held"], status["backlog"]) == (
        "running", 2, 3, 1, 4)
    assert status["all_time"] == {"processed": 120, "succeeded": 116, "failed": 2, "cancelled": 2,
                                  "avg_run_ms": 1000, "success_rate": 0.9831}
    assert status["last_24h"] == {"processed": 20, "succeeded": 16, "failed": 2, "cancelled": 2,
                                  "avg_run_ms": 1000, "success_rate": 0.8889}
    assert status["last_finished_at"] == (T0 - timedelta(seconds=10)).isoformat()


def test_jobs_per_second_count_the_last_minute_exactly_and_the_last_hour_from_the_rollups(acme, history):
    status = executor_status(team=acme).as_dict()
    # Finished 10 s and 59 s ago; the one 61 s ago is outside the minute.
    assert (status["jobs_last_minute"], status["jobs_per_second_minute"]) == (2, 0.0333)
    # This hour's 8 plus half of the previous hour's 12 (it is 12:30): 14 in the last hour.
    assert status["jobs_per_second_hour"] == round(14 / 3600, 4)


def test_a_team_with_nothing_yet_has_zeros_and_no_rates(acme, frozen):
    status = executor_status(team=acme).as_dict()
    assert status["all_time"] == {"processed": 0, "succeeded": 0, "failed": 0, "cancelled": 0,
                                  "avg_run_ms": None, "success_rate": None}
    assert (status["backlog"], status["jobs_per_second_hour"], status["last_finished_at"]) == (0, 0.0, None)


def test_the_status_is_six_queries_and_the_rollups_before_this_hour_are_summed_once_an_hour(
        acme, history, django_assert_num_queries, time_machine):
    # Unfinished by status, the last 24 h of rollups, the last minute, the last finished job, the
    # pauses, the worker beats (host memory needs no query); the first call of the hour also sums
    # the rollups before this hour.
    with django_assert_num_queries(7):
        executor_status(team=acme)
    with django_assert_num_queries(6):
        assert executor_status(team=acme).all_time.processed == 120
    JobStat.objects.filter(team=acme, hour=HOUR).update(completed=7)  # this hour moves on: read live
    with django_assert_num_queries(6):
        assert executor_status(team=acme).all_time.processed == 121
    time_machine.move_to(T0 + timedelta(hours=1), tick=False)
    with django_assert_num_queries(7):
        assert executor_status(team=acme).all_time.processed == 121


def test_a_paused_queue_says_so_and_a_handler_pause_is_listed_without_pausing_the_team(acme, globex, frozen):
    queue_pause(scope=QueuePause.Scope.HANDLER, handler="pulse.fail", reason="vendor down", by="ops")
    status = executor_status(team=acme).as_dict()
    assert (status["state"], status["paused_handlers"]) == ("running", ["pulse.fail"])
    queue_pause(scope=QueuePause.Scope.TEAM, team=acme, reason="migrating", by="alice")
    status = executor_status(team=acme).as_dict()
    assert status["state"] == "paused" and [p["reason"] for p in status["pauses"]] == ["vendor down", "migrating"]
    assert executor_status(team=globex).state == "running"


def test_workers_are_the_live_beats_with_the_oldest_clusters_uptime_and_their_memory(acme, frozen, settings):
    settings.PULSE_WORKER_BEAT_SECONDS = 10
    cluster_start = T0 - timedelta(hours=2)
    WorkerBeat.objects.create(name="h:1", cluster="h:0", cluster_started_at=cluster_start,
                              started_at=T0 - timedelta(minutes=5), seen_at=T0 - timedelta(seconds=5), rss_bytes=100)
    WorkerBeat.objects.create(name="h:2", cluster="h:0", cluster_started_at=cluster_start,
                              started_at=T0 - timedelta(minutes=1), seen_at=T0 - timedelta(seconds=29), rss_bytes=50)
    # Three beats missed: gone.
    WorkerBeat.objects.create(name="h:3", cluster="h:9", cluster_started_at=T0 - timedelta(days=1),
                              seen_at=T0 - timedelta(seconds=31), rss_bytes=999)
    job(acme, S.RUNNING)
    workers = executor_status(team=acme).as_dict()["workers"]
    assert workers == {"total": 2, "active": 1, "counted_from": "beats", "up_since": cluster_start.isoformat(),
                       "uptime_seconds": 7200, "memory_rss_bytes": 150}


def test_without_any_beat_the_configured_worker_count_is_shown(acme, frozen, settings):
    settings.PULSE_WORKERS = 3
    workers = executor_status(team=acme).as_dict()["workers"]
    assert (workers["total"], workers["counted_from"], workers["uptime_seconds"]) == (3, "configured", None)


def test_a_beat_creates_then_refreshes_the_workers_row_and_old_rows_are_pruned(db, time_machine):
    time_machine.move_to(T0, tick=False)
    beat(name="h:7", cluster="h:6", cluster_started_at=T0 - timedelta(minutes=1), spawned=True)
    time_machine.move_to(T0 + timedelta(seconds=10), tick=False)
    beat(name="h:7", cluster="h:6", cluster_started_at=T0 - timedelta(minutes=1))
    row = WorkerBeat.objects.get(name="h:7")
    assert (row.started_at, row.seen_at) == (T0, T0 + timedelta(seconds=10)) and row.rss_bytes > 10_000_000
    time_machine.move_to(T0 + timedelta(minutes=11), tick=False)
    assert beats_prune() == 1 and not WorkerBeat.objects.exists()


# --- API -------------------------------------------------------------------------------------


def test_the_api_serves_the_teams_executor_status(acme, history):
    body = token_client(acme, "read").get("/api/v1/executor/").json()
    assert (body["state"], body["active"], body["backlog"], body["all_time"]["processed"]) == ("running", 2, 4, 120)
    assert body["workers"]["total"] >= 1 and body["memory"]["host_total_bytes"] > 0


def test_another_team_sees_only_its_own_numbers_over_the_api(globex, history):
    body = token_client(globex, "read").get("/api/v1/executor/").json()
    assert (body["active"], body["backlog"], body["all_time"]["processed"], body["workers"]["active"]) == (1, 0, 100, 1)
    assert body["last_finished_at"] == (T0 - timedelta(seconds=1)).isoformat()


def test_the_api_needs_a_token(db, client):
    response = client.get("/api/v1/executor/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


# --- Every team, for operators ----------------------------------------------------------------


def test_the_system_status_has_a_row_per_team_and_totals_over_all_of_them(acme, globex, history):
    queue_pause(scope=QueuePause.Scope.GLOBAL, reason="upgrade", by="ops")
    system = executor_system()
    rows = {row.team.name: row for row in system.teams}
    assert set(rows) == {acme.name, globex.name}
    assert (rows[acme.name].running, rows[acme.name].backlog, rows[acme.name].rates.last_minute) == (2, 4, 2)
    assert (rows[globex.name].running, rows[globex.name].all_time.processed) == (1, 100)
    assert rows[globex.name].last_finished_at == T0 - timedelta(seconds=1)
    overall = system.overall
    assert (overall.running, overall.backlog, overall.all_time.processed, overall.rates.last_minute) == (3, 4, 220, 3)
    assert overall.state == "paused" and [p.reason for p in system.pauses] == ["upgrade"]
    assert all(row.state == "paused" for row in system.teams)


def test_the_system_lists_each_worker_with_the_job_it_runs(acme, frozen):
    WorkerBeat.objects.create(name="h:1", cluster="h:0", started_at=T0 - timedelta(minutes=3), seen_at=T0,
                              rss_bytes=64)
    running = job(acme, S.RUNNING, worker="h:1")
    (worker,) = executor_system().workers
    assert (worker.name, worker.alive, worker.job, worker.team, worker.uptime_seconds(T0)) == (
        "h:1", True, running.public_id, acme.name, 180)


# --- Real workers ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_real_worker_processes_beat_with_their_cluster_uptime_and_memory(acme, cluster):
    from tests.jobs.test_daemon import wait_for

    # PULSE_WORKERS=2 and a beat a second (the cluster fixture).
    beats = wait_for(lambda: (rows := list(WorkerBeat.objects.all())) and len(rows) == 2 and rows, what="two beats")
    assert len({b.cluster for b in beats}) == 1 and all(b.cluster_started_at and b.rss_bytes > 10_000_000 for b in beats)
    first_seen = {b.name: b.seen_at for b in beats}
    wait_for(lambda: all(WorkerBeat.objects.get(name=n).seen_at > seen for n, seen in first_seen.items()),
             what="a second beat of each worker")
    workers = executor_status(team=acme).as_dict()["workers"]
    assert (workers["total"], workers["counted_from"], workers["active"]) == (2, "beats", 0)
    assert workers["uptime_seconds"] >= 0 and workers["memory_rss_bytes"] == sum(
        WorkerBeat.objects.values_list("rss_bytes", flat=True))
