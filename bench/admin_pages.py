"""The admin at scale: server time of every changelist that grows without bound, at 1,000,000 jobs.

The history is the pages measurement's (bench/pages.py: one team's million jobs, a ninth as many
for another, 10,000 schedules with ten runs each), with what the jobs leave behind added by
PostgreSQL itself: an attempt, a log line, two events and a ledger entry a job, and one job with
many attempts and log lines (its change page). Run against a migrated PostgreSQL database:

    DATABASE_URL=postgres://…/db DJANGO_SETTINGS_MODULE=pulse_site.settings \\
        .venv/bin/python -m bench.admin_pages [--rows 1000000] [--requests 5] [--only jobs]

Prints one line a page: the median server time of `--requests` requests (in-process
django.test.Client, logged in as a superuser), the statements, and the time spent in them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import django

# The job whose change page is measured: many attempts and log lines.
BUSY_ATTEMPTS = 50
BUSY_LINES = 2000


def _insert_trail(team_id: int) -> None:
    """What the team's jobs left behind: an attempt, a log line, two events, a ledger entry each."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO jobs_attempt (job_id, number, worker, started_at, finished_at, outcome, error_code,
                error_message, traceback, cost)
            SELECT id, 1, 'bench', started_at, completed_at,
                   CASE status WHEN 'completed' THEN 'completed' WHEN 'failed' THEN 'failed'
                               WHEN 'cancelled' THEN 'cancelled' ELSE 'running' END,
                   error_code, error_message, '', cost_actual
            FROM jobs_job WHERE team_id = %(team)s AND started_at IS NOT NULL
            """,
            {"team": team_id},
        )
        cursor.execute(
            """
            INSERT INTO jobs_tasklog (job_id, attempt, stage, task, level, message, metadata, created_at)
            SELECT id, 1, 'run', handler, CASE WHEN status = 'failed' THEN 'error' ELSE 'info' END,
                   'finished ' || status, '{}', coalesce(completed_at, created_at)
            FROM jobs_job WHERE team_id = %(team)s
            """,
            {"team": team_id},
        )
        cursor.execute(
            """
            INSERT INTO live_event (team_id, kind, subject, payload, created_at)
            SELECT team_id, k.kind, public_id, '{}', created_at
            FROM jobs_job, (VALUES ('job.created'), ('job.finished')) AS k(kind)
            WHERE team_id = %(team)s ORDER BY jobs_job.id, k.kind
            """,
            {"team": team_id},
        )
        cursor.execute(
            """
            INSERT INTO budgets_ledger (team_id, job_id, handler, attempt, kind, scope, window_kind, window_start,
                window_end, amount, at)
            SELECT team_id, public_id, handler, 1, 'charge', '', 'day', date_trunc('day', completed_at),
                   date_trunc('day', completed_at) + interval '1 day', cost_actual, completed_at
            FROM jobs_job WHERE team_id = %(team)s AND cost_actual IS NOT NULL ORDER BY id
            """,
            {"team": team_id},
        )


def _insert_busy_job(team_id: int) -> None:
    """The newest failed job made busy: BUSY_ATTEMPTS attempts, BUSY_LINES log lines."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH busy AS (SELECT id, started_at FROM jobs_job WHERE team_id = %(team)s AND status = 'failed'
                          ORDER BY id DESC LIMIT 1)
            INSERT INTO jobs_attempt (job_id, number, worker, started_at, finished_at, outcome, error_code,
                error_message, traceback, cost)
            SELECT busy.id, n, 'bench', busy.started_at, busy.started_at, 'retrying', 'network_error',
                   'upstream answered 503', '', 100
            FROM busy, generate_series(2, %(attempts)s) AS n
            """,
            {"team": team_id, "attempts": BUSY_ATTEMPTS},
        )
        cursor.execute(
            """
            WITH busy AS (SELECT id, started_at FROM jobs_job WHERE team_id = %(team)s AND status = 'failed'
                          ORDER BY id DESC LIMIT 1)
            INSERT INTO jobs_tasklog (job_id, attempt, stage, task, level, message, metadata, created_at)
            SELECT busy.id, 1 + n %% %(attempts)s, 'run', 'step', 'info', 'line ' || n, '{}', busy.started_at
            FROM busy, generate_series(1, %(lines)s) AS n
            """,
            {"team": team_id, "attempts": BUSY_ATTEMPTS, "lines": BUSY_LINES},
        )


def admin_prepare(*, rows: int) -> Any:
    """The pages measurement's history with its trail, and a superuser (reused when there)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from bench.pages import pages_prepare
    from jobs.models import Attempt

    _, team = pages_prepare(rows=rows)
    if not Attempt.objects.filter(job__team=team).exists():
        _insert_trail(team.pk)
        _insert_busy_job(team.pk)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    User = get_user_model()
    admin = User.objects.filter(username="bench-admin").first()
    if admin is None:
        admin = User.objects.create_superuser("bench-admin", "admin@example.com", "x")
    return admin


def admin_pages() -> dict[str, str]:
    """Every page measured: name → URL."""
    from django.urls import reverse

    from jobs.models import Attempt, Job
    from pulse_site.teams.models import Team

    team = Team.objects.get(slug="bench")
    busy = Attempt.objects.filter(number=BUSY_ATTEMPTS).values_list("job_id", flat=True).first()
    assert busy is not None, "the busy job is missing: drop the database to seed it again"
    job = Job.objects.get(pk=busy)
    attempt = Attempt.objects.filter(job=job).first()
    assert attempt is not None
    one = {
        "job": reverse("admin:jobs_job_change", args=[job.pk]),
        "attempt": reverse("admin:jobs_attempt_change", args=[attempt.pk]),
    }
    lists = {
        "jobs": ("jobs_job", ["", "status=failed", "status=queued", "source__exact=dashboard", "source__exact=api", "handler=bench.legacy",
                              "handler=pulse.fail", "error_code__exact=timeout", "error_code__exact=network_error",
                              f"team__id__exact={team.pk}", "q=bench", "q=pulse.fail", f"q={job.public_id}",
                              "q=SP_00000000000000000000000000", f"q={job.pk}"]),
        "attempts": ("jobs_attempt", ["", "outcome=failed", "outcome=worker_lost", "error_code=timeout",
                                      "error_code=network_error", f"q={job.public_id}", f"q={busy}"]),
        "logs": ("jobs_tasklog", ["", "level=error", "level=debug", f"q={job.public_id}",
                                  f"q={job.public_id}+line"]),
        "events": ("live_event", ["", "family=job", "family=budget", "family=team", f"team__id__exact={team.pk}",
                                  "q=bench", f"q={job.public_id}", "q=1"]),
        "ledger": ("budgets_ledger", ["", "kind=charge", "kind=override", "window_kind=day", "window_kind=month",
                                      f"team__id__exact={team.pk}", f"q={job.public_id}", "q=bench"]),
        "usage": ("budgets_usage", ["", "kind=day", f"team__id__exact={team.pk}", "q=bench"]),
        "executions": ("schedules_execution", ["", "trigger=cron", "outcome=skipped", "outcome=failed",
                                               f"team__id__exact={team.pk}", "q=bench", "q=Report+042"]),
        "schedules": ("schedules_schedule", ["", "enabled__exact=0", "handler=pulse.noop",
                                             f"team__id__exact={team.pk}", "q=042"]),
    }
    pages = dict(one)
    for name, (table, queries) in lists.items():
        url = reverse(f"admin:{table}_changelist")
        for query in queries:
            pages[f"{name}?{query}" if query else name] = f"{url}?{query}" if query else url
    return pages


def sort_pages(client: Any, pages: dict[str, str]) -> dict[str, str]:
    """Each list sorted by each of its columns, both ways (?o=N, ?o=-N, N as the changelist numbers
    its columns: 0 is the selection box when the list has actions), whether or not its title offers
    the sort: an address can ask for any."""
    sorts = {}
    for name, url in pages.items():
        if "?" in name or name in ("job", "attempt"):
            continue
        changelist = client.get(url).context_data["cl"]
        for index, column in enumerate(changelist.list_display):
            if column == "action_checkbox" or callable(column):
                continue
            sorts[f"{name}?o={index} ({column})"] = f"{url}?o={index}"
            sorts[f"{name}?o=-{index}"] = f"{url}?o=-{index}"
    return sorts


def measure(*, rows: int, requests: int, only: str = "") -> list[tuple[str, float, int, float]]:
    from django.db import connection
    from django.test import Client

    from bench.pages import _SqlClock

    admin = admin_prepare(rows=rows)
    client = Client()
    client.force_login(admin)
    results = []
    pages = admin_pages()
    for name, url in {**pages, **sort_pages(client, pages)}.items():
        if only and not name.startswith(only):
            continue
        response = client.get(url)  # warm
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        times, statements, in_sql = [], [], []
        for _ in range(requests):
            clock = _SqlClock()
            started = time.perf_counter()
            with connection.execute_wrapper(clock):
                client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            statements.append(clock.count)
            in_sql.append(clock.total * 1000)
        results.append((name, statistics.median(times), statements[-1], statistics.median(in_sql)))
        print(f"{name:45} {statistics.median(times):8.1f} ms  {statements[-1]:3} statements  "
              f"{statistics.median(in_sql):8.1f} ms in SQL", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    measure(rows=args.rows, requests=args.requests, only=args.only)


if __name__ == "__main__":
    main()
