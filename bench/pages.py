"""The pages measurement: server time of the jobs list and the overview with a big history.

The history is written by PostgreSQL itself (`INSERT … SELECT generate_series`, a million rows in
well under a minute) and kept between runs when the database is kept (`--keep-pages`): a run
whose team already holds the asked number of jobs reuses them.
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.db import connection

from bench.measures import percentile, reset_database

# Handlers by share of the history; `bench.legacy` only ran in the oldest tenth (the "big old team"
# whose filter matches nothing recent), so a filter on it must not read the whole history.
HANDLERS = "(ARRAY['pulse.noop','pulse.noop','pulse.noop','pulse.noop','pulse.sleep','pulse.sleep','demo.report','demo.report','http.request','pulse.fail'])[1 + (g * 7 + g / 10) %% 10]"
SECOND_TEAM_SHARE = 9
HISTORY_VERSION = 3  # bump when the generated history changes, so kept databases are rebuilt  # the other team holds a ninth as many jobs: the plans must not mix them up


def _insert_history(team_id: int, rows: int, *, key: str) -> None:
    """`rows` jobs over 90 days, newest last (ids grow with time, as they do): 88 % completed,
    10 % failed, 2 % cancelled; the newest 200 unfinished (queued, held, running)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO jobs_job (public_id, team_id, handler, handler_version, payload, source, status, priority,
                progress_current, progress_message, cost_estimate, cost_actual, pulse_state, error_code,
                error_message, error_details, attempts, max_attempts, timeout_seconds, worker, hold_reasons,
                cancel_requested, request_hash, created_by, origin, created_at, started_at, completed_at, updated_at)
            SELECT 'JB_' || upper(substr(md5(%(key)s || g::text), 1, 26)), %(team)s,
                   CASE WHEN g <= %(rows)s / 10 AND g %% 50 = 0 THEN 'bench.legacy' ELSE {HANDLERS} END,
                   '1', jsonb_build_object('user', g %% 1000, 'region', (ARRAY['eu','us','ap'])[1 + g %% 3]),
                   CASE WHEN g %% 5 = 0 THEN 'schedule' ELSE 'api' END, s.status, 0, 0, '', 10000,
                   CASE WHEN s.status IN ('completed', 'failed') THEN 10000 END, '{{}}',
                   CASE WHEN s.status = 'failed' THEN 'network_error' ELSE '' END,
                   CASE WHEN s.status = 'failed' THEN 'upstream answered 503' ELSE '' END, '{{}}', 1, 3, 300, 'bench',
                   CASE WHEN s.status = 'paused' THEN '[{{"kind": "daily"}}]'::jsonb ELSE '[]'::jsonb END,
                   false, '', '', '', t,
                   CASE WHEN s.status IN ('queued', 'paused') THEN NULL ELSE t + interval '1 second' END,
                   CASE WHEN s.status IN ('completed', 'failed', 'cancelled') THEN t + interval '3 seconds' END,
                   t + interval '3 seconds'
            FROM generate_series(1, %(rows)s) AS g,
                 LATERAL (SELECT now() - ((%(rows)s - g) * interval '90 days' / %(rows)s)) AS x(t),
                 LATERAL (SELECT CASE
                     WHEN g > %(rows)s - 20 THEN 'running'
                     WHEN g > %(rows)s - 50 THEN 'paused'
                     WHEN g > %(rows)s - 200 THEN 'queued'
                     WHEN g %% 50 = 1 THEN 'cancelled'
                     WHEN g %% 10 = 3 THEN 'failed'
                     ELSE 'completed' END) AS s(status)
            """,
            {"team": team_id, "rows": rows, "key": key},
        )


SCHEDULES = 10_000


def _insert_schedules(team_id: int, count: int) -> None:
    """`count` schedules (SCHEDULES, the number issue 8's schedule goal fires in one minute, at full
    size), each with the ten executions its list row shows, all skipped (no job)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO schedules_schedule (public_id, team_id, name, description, handler, payload, cron, time_zone,
                enabled, overlap_policy, misfire_policy, next_run_at, last_run_at, broken_reason, created_by,
                created_at, updated_at)
            SELECT 'SP_' || upper(substr(md5('schedule' || g::text), 1, 26)), %(team)s,
                   'Report ' || lpad(g::text, 5, '0'), '', 'pulse.noop', '{}', (g %% 60)::text || ' 3 * * *', 'UTC',
                   true, 'skip', 'once', date_trunc('day', now()) + interval '1 day 3 hours',
                   date_trunc('day', now()) + interval '3 hours', '', 'bench', now(), now()
            FROM generate_series(1, %(count)s) AS g
            """,
            {"team": team_id, "count": count},
        )
        cursor.execute(
            """
            INSERT INTO schedules_execution (public_id, schedule_id, team_id, fire_time, trigger, outcome, reason,
                created_at, finished_at, ended)
            SELECT 'EX_' || upper(substr(md5('execution' || s.id::text || '-' || d::text), 1, 26)), s.id, s.team_id,
                   date_trunc('day', now()) - d * interval '1 day' + interval '3 hours', 'cron', 'skipped',
                   'the last run was unfinished', now(), now(), ''
            FROM schedules_schedule s, generate_series(0, 9) AS d WHERE s.team_id = %(team)s
            """,
            {"team": team_id},
        )


def _insert_rollups() -> None:
    """The hourly JobStat rows settle would have written for the history."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO jobs_jobstat (team_id, handler, hour, completed, failed, cancelled, run_ms)
            SELECT team_id, handler, date_trunc('hour', completed_at),
                   count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'),
                   count(*) FILTER (WHERE status = 'cancelled'),
                   coalesce(sum(extract(epoch FROM completed_at - started_at) * 1000)::bigint, 0)
            FROM jobs_job WHERE completed_at IS NOT NULL GROUP BY 1, 2, 3
            """
        )


def pages_prepare(*, rows: int) -> tuple[Any, Any]:
    """The bench user and its team holding `rows` jobs (reused when already there)."""
    from django.contrib.auth import get_user_model

    from pulse_site.teams.models import Team
    from pulse_site.teams.services import team_create

    name = f"Bench {rows} jobs, v{HISTORY_VERSION}"
    team = Team.objects.filter(slug="bench", name=name).first()
    user = get_user_model().objects.filter(username="bench").first()
    if team is not None and user is not None:
        return user, team
    reset_database()
    user = get_user_model().objects.create_user("bench", password="x")
    team = team_create(name=name, slug="bench", owner=user)
    other = team_create(name="Bench other", slug="bench-other")
    _insert_history(other.pk, max(1, rows // SECOND_TEAM_SHARE), key="other")
    _insert_history(team.pk, rows, key="bench")
    _insert_rollups()
    _insert_schedules(team.pk, min(SCHEDULES, rows))
    with connection.cursor() as cursor:
        # What autovacuum does soon after a bulk load: statistics and the visibility map (index-only counts).
        cursor.execute("VACUUM ANALYZE")
    return user, team


PAGES = {
    # The three first: the smoke run measures only those.
    "jobs_first": ("jobs:list", ""),
    "jobs_filtered": ("jobs:list", "?status=failed&handler=pulse.sleep"),
    "overview": ("overview", ""),
    "jobs_failed": ("jobs:list", "?status=failed"),
    "jobs_legacy": ("jobs:list", "?handler=bench.legacy"),
    "jobs_none": ("jobs:list", "?status=failed&handler=bench.legacy"),
    "jobs_payload": ("jobs:list", "?q=failed+region%3Deu"),
    "jobs_payload_rare": ("jobs:list", "?q=failed+user%3D42"),
    "jobs_source_none": ("jobs:list", "?status=cancelled&source=dashboard"),
    "overview_pulse": ("overview_pulse", ""),
    "overview_charts": ("overview_charts", ""),
    "jobs_error_code": ("jobs:list", "?error_code=network_error&handler=pulse.sleep"),
    "jobs_error_code_none": ("jobs:list", "?error_code=timeout"),
    "handlers": ("handlers:page", ""),
    "handler": ("handlers:detail pulse.fail", ""),
    # 10,000 schedules: a page of them, and the ones whose name holds a piece.
    "schedules": ("schedules:list", ""),
    "schedules_named": ("schedules:list", "?name=042"),
}


def pulse_pages(*, rows: int, requests: int, pages: int = len(PAGES)) -> dict[str, Any]:
    """p95 server time (in-process django.test.Client, so no network or browser) of the first
    `pages` of PAGES."""
    from django.test import Client
    from django.urls import reverse

    started = time.monotonic()
    user, team = pages_prepare(rows=rows)
    prepare_s = time.monotonic() - started
    client = Client()
    client.force_login(user)
    result: dict[str, Any] = {"prepare_s": prepare_s}
    sql = _SqlClock()
    for name, (route, query) in list(PAGES.items())[:pages]:
        url = reverse(route.split(" ")[0], args=route.split(" ")[1:]) + query
        client.get(url)  # warm caches and the connection
        times, cpu, in_sql = [], [], []
        for _ in range(requests):
            sql.total = 0.0
            started, started_cpu = time.perf_counter(), time.process_time()
            with connection.execute_wrapper(sql):
                response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
            in_sql.append(sql.total * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
        # Wall time is what a user waits for; on a busy machine it is mostly waiting for a core, so
        # this process's CPU time and the time in SQL statements are given beside it (medians).
        result[f"{name}_p95_ms"] = percentile(times, 95)
        result[f"{name}_cpu_ms"] = percentile(cpu, 50)
        result[f"{name}_sql_ms"] = percentile(in_sql, 50)
    result["load_average"] = os.getloadavg()[0]
    return result


class _SqlClock:
    """An execute_wrapper adding up the time spent in SQL statements, and counting them."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.total += time.perf_counter() - started
            self.count += 1
