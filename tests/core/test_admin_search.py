"""The admin's search on the tables that grow without bound (jobs, attempts, log lines, events, the
ledger, executions, usage) asks only what an index answers: an id typed in finds that row exactly,
a team's slug or a handler's name finds their rows exactly or by its start, and nothing is ever
matched inside text. A substring match (`icontains`, what Django's admin does by default) read the
whole table on every search; on the small tables (teams, users, tokens, schedules…) it is kept."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from budgets.models import Ledger, Override, Usage
from jobs.models import Attempt, Job, TaskLog
from pulse_site.ids import new_public_id
from pulse_site.live.models import Event
from schedules.models import Execution
from schedules.services import schedule_create
from tests.plans import assert_reads_at_most


def _jobs(team, count: int = 1, handler: str = "pulse.noop", **fields) -> list[Job]:
    return Job.objects.bulk_create([Job(team=team, handler=handler, **fields) for _ in range(count)])


def found(client, url: str, term: str) -> list:
    """The rows the changelist at `url` lists for the search `term`."""
    response = client.get(url, {"q": term})
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def job_ids(client, term: str) -> list[str]:
    return sorted(job.public_id for job in found(client, "/admin/jobs/job/", term))


def test_a_job_id_typed_in_finds_that_job_and_no_other(admin_client, acme):
    wanted, other = _jobs(acme, 2)

    assert job_ids(admin_client, wanted.public_id) == [wanted.public_id]
    assert job_ids(admin_client, wanted.public_id.lower()) == [wanted.public_id]  # pasted in lower case
    assert job_ids(admin_client, str(other.pk)) == [other.public_id]  # its number, as in its admin URL
    assert job_ids(admin_client, wanted.public_id[3:20]) == []  # a piece of an id is no id


def test_a_teams_slug_or_its_start_finds_that_teams_jobs_never_a_piece_of_it(admin_client, acme, globex):
    ours, theirs = _jobs(acme)[0], _jobs(globex)[0]

    assert job_ids(admin_client, "acme") == [ours.public_id]
    assert job_ids(admin_client, "glo") == [theirs.public_id]
    assert job_ids(admin_client, "cme") == []  # matched Acme's name inside before


def test_a_handlers_name_or_its_start_finds_its_jobs_and_a_team_narrows_them(admin_client, acme, globex,
                                                                           temp_handler):
    temp_handler("reports.build")(lambda ctx: None)
    ours = _jobs(acme, handler="reports.build")[0]
    theirs = _jobs(globex, handler="reports.build")[0]
    _jobs(acme, handler="pulse.noop")

    assert job_ids(admin_client, "reports.build") == sorted([ours.public_id, theirs.public_id])
    assert job_ids(admin_client, "reports.") == sorted([ours.public_id, theirs.public_id])
    assert job_ids(admin_client, "acme reports.build") == [ours.public_id]
    assert job_ids(admin_client, "ports.build") == []


def test_a_handler_no_longer_deployed_is_found_by_its_whole_name(admin_client, acme):
    retired = _jobs(acme, handler="legacy.export")[0]

    assert job_ids(admin_client, "legacy.export") == [retired.public_id]
    assert job_ids(admin_client, "legacy.") == []  # its start is not known to be a handler's


def test_a_schedules_id_finds_the_jobs_it_ran(admin_client, acme, globex):
    schedule = new_public_id("SP")
    run = _jobs(acme, origin=schedule)[0]
    _jobs(acme)
    _jobs(globex, origin=new_public_id("SP"))

    assert job_ids(admin_client, schedule) == [run.public_id]


def test_an_attempt_is_found_by_its_jobs_id_or_its_number(admin_client, acme):
    job, other = _jobs(acme, 2)
    first, second, elsewhere = Attempt.objects.bulk_create([
        Attempt(job=job, number=1), Attempt(job=job, number=2), Attempt(job=other, number=1, worker="w-1")])

    assert [a.pk for a in found(admin_client, "/admin/jobs/attempt/", job.public_id)] == [first.pk, second.pk]
    assert [a.pk for a in found(admin_client, "/admin/jobs/attempt/", str(elsewhere.pk))] == [elsewhere.pk]
    assert found(admin_client, "/admin/jobs/attempt/", "w-1") == []  # workers are not indexed


def test_log_lines_are_found_by_their_jobs_id_and_words_beside_it_search_that_jobs_lines(admin_client, acme):
    job, other = _jobs(acme, 2)
    hit, miss, elsewhere = TaskLog.objects.bulk_create([
        TaskLog(job=job, message="upstream timeout"), TaskLog(job=job, message="ok"),
        TaskLog(job=other, message="upstream timeout")])
    url = "/admin/jobs/tasklog/"

    assert [line.pk for line in found(admin_client, url, job.public_id)] == [hit.pk, miss.pk]
    assert [line.pk for line in found(admin_client, url, f"{job.public_id} timeout")] == [hit.pk]
    assert [line.pk for line in found(admin_client, url, str(elsewhere.pk))] == [elsewhere.pk]


def test_words_alone_do_not_read_every_log_line_and_the_page_says_so(admin_client, acme):
    job = _jobs(acme)[0]
    TaskLog.objects.create(job=job, message="upstream timeout")

    response = admin_client.get("/admin/jobs/tasklog/", {"q": "timeout"}, follow=True)

    assert list(response.context["cl"].result_list) == []
    warnings = [str(m) for m in response.context["messages"]]
    assert len(warnings) == 1 and "timeout" in warnings[0] and "JB_" in warnings[0]


def test_events_are_found_by_their_number_their_teams_slug_or_what_they_are_about(admin_client, acme, globex):
    job = _jobs(acme)[0]
    about_job = Event.objects.create(team=acme, kind="job.completed", subject=job.public_id)
    token = new_public_id("TK")
    about_token = Event.objects.create(team=acme, kind="token.revoked", subject=token)
    theirs = Event.objects.create(team=globex, kind="job.completed", subject=new_public_id("JB"))
    url = "/admin/live/event/"

    assert [e.pk for e in found(admin_client, url, str(about_token.pk))] == [about_token.pk]
    assert [e.pk for e in found(admin_client, url, job.public_id)] == [about_job.pk]
    assert [e.pk for e in found(admin_client, url, token)] == [about_token.pk]
    assert [e.pk for e in found(admin_client, url, theirs.subject)] == [theirs.pk]  # its job is gone
    assert theirs.pk in [e.pk for e in found(admin_client, url, "globex")]
    assert about_job.pk not in [e.pk for e in found(admin_client, url, "globex")]
    assert found(admin_client, url, "completed") == []  # the kinds are a filter, not words


def test_ledger_entries_are_found_by_their_jobs_id_the_override_or_the_team(admin_client, acme, globex):
    override = Override.objects.create(team=acme, amount=5, expires_at=timezone.now() + timedelta(hours=1),
                                       reason="incident")
    charge, used, theirs = Ledger.objects.bulk_create([
        Ledger(team=acme, job_id="JB_" + "1" * 26, attempt=1, kind="charge", amount=1),
        Ledger(team=acme, job_id="JB_" + "2" * 26, attempt=1, kind="override", amount=1, override=override),
        Ledger(team=globex, job_id="JB_" + "3" * 26, attempt=1, kind="charge", amount=1)])
    url = "/admin/budgets/ledger/"

    assert [e.pk for e in found(admin_client, url, charge.job_id)] == [charge.pk]
    assert [e.pk for e in found(admin_client, url, override.public_id)] == [used.pk]
    assert [e.pk for e in found(admin_client, url, "globex")] == [theirs.pk]


def test_executions_are_found_by_their_id_their_schedules_id_or_name_their_job_or_their_team(admin_client, acme,
                                                                                              globex):
    nightly = schedule_create(team=acme, name="Nightly export", handler="pulse.noop", cron="@daily", time_zone="UTC")
    hourly = schedule_create(team=globex, name="Hourly", handler="pulse.noop", cron="@hourly", time_zone="UTC")
    job = _jobs(acme)[0]
    now = timezone.now()
    ran, skipped, theirs = Execution.objects.bulk_create([
        Execution(schedule=nightly, team=acme, fire_time=now, job=job),
        Execution(schedule=nightly, team=acme, fire_time=now - timedelta(days=1), outcome="skipped"),
        Execution(schedule=hourly, team=globex, fire_time=now)])
    url = "/admin/schedules/execution/"

    def pks(term: str) -> list[int]:
        return sorted(e.pk for e in found(admin_client, url, term))

    assert pks(ran.public_id) == [ran.pk]
    assert pks(nightly.public_id) == [ran.pk, skipped.pk]
    assert pks(job.public_id) == [ran.pk]
    assert pks("nightly") == [ran.pk, skipped.pk]  # a schedule's name (a small table) by its start
    assert pks("globex") == [theirs.pk]
    assert pks("export") == []


def test_usage_rows_are_found_by_their_teams_slug_or_their_handlers_name(admin_client, acme, globex):
    now = timezone.now()
    team_day, handler_day, theirs = Usage.objects.bulk_create([
        Usage(team=acme, scope="", kind="day", window_start=now, window_end=now),
        Usage(team=acme, scope="pulse.noop", kind="day", window_start=now, window_end=now),
        Usage(team=globex, scope="pulse.noop", kind="day", window_start=now, window_end=now)])
    url = "/admin/budgets/usage/"

    assert sorted(u.pk for u in found(admin_client, url, "acme")) == [team_day.pk, handler_day.pk]
    assert sorted(u.pk for u in found(admin_client, url, "pulse.noop")) == [handler_day.pk, theirs.pk]
    assert sorted(u.pk for u in found(admin_client, url, "acme pulse.noop")) == [handler_day.pk]


# (changelist, the table it reads, a search of each kind it takes)
LARGE = {
    "jobs": ("/admin/jobs/job/", "jobs_job", ["JB_01J0000000000000000000000A", "acme", "pulse.noop", "7",
                                               "SP_01J0000000000000000000000A", "ac pulse."]),
    "attempts": ("/admin/jobs/attempt/", "jobs_attempt", ["JB_01J0000000000000000000000A", "7"]),
    "logs": ("/admin/jobs/tasklog/", "jobs_tasklog", ["JB_01J0000000000000000000000A", "7"]),
    "events": ("/admin/live/event/", "live_event", ["7", "acme", "JB_01J0000000000000000000000A",
                                                    "TK_01J0000000000000000000000A"]),
    "ledger": ("/admin/budgets/ledger/", "budgets_ledger", ["JB_01J0000000000000000000000A", "acme", "7",
                                                            "OV_01J0000000000000000000000A"]),
    "executions": ("/admin/schedules/execution/", "schedules_execution",
                   ["EX_01J0000000000000000000000A", "SP_01J0000000000000000000000A", "acme", "night"]),
    "usage": ("/admin/budgets/usage/", "budgets_usage", ["acme", "pulse.noop", "7"]),
}


# A match inside text: `LIKE '%…'` (SQLite's icontains), `UPPER(…) LIKE UPPER('%…')` (PostgreSQL's), or
# any UPPER(…), which no plain index serves. (A prefix, `LIKE 'job.%'`, is an index's.)
SUBSTRING = re.compile(r"LIKE\s+(UPPER\()?'%|UPPER\(", re.IGNORECASE)


@pytest.mark.parametrize("case", list(LARGE), ids=list(LARGE))
def test_no_search_of_a_large_table_matches_inside_its_text(admin_client, acme, case):
    """A read of every row, whatever index the table has; the small tables the search looks names
    up in (teams, schedules) may."""
    url, table, terms = LARGE[case]
    _jobs(acme)

    for term in terms:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url, {"q": term}).status_code == 200
        on_table = [q["sql"] for q in queries.captured_queries if f'"{table}"' in q["sql"]]
        assert [sql for sql in on_table if SUBSTRING.search(sql)] == [], term


OURS = {"teams", "live", "budgets", "jobs", "schedules", "notifications"}


def test_every_admin_with_a_search_box_says_what_it_searches(db):
    """Pulse's own admins and the users'; django-q2's and axes' are theirs."""
    silent = [type(model_admin).__name__ for model, model_admin in admin.site._registry.items()
              if (model._meta.app_label in OURS or model._meta.label == "auth.User")
              and model_admin.search_fields and not model_admin.search_help_text]

    assert silent == []


def test_the_small_tables_still_match_inside_names(admin_client, acme):
    """Teams, tokens, schedules, users: a few thousand rows at most, read whole in a blink."""
    schedule_create(team=acme, name="Nightly export", handler="pulse.noop", cron="@daily", time_zone="UTC")

    assert [t.name for t in found(admin_client, "/admin/teams/team/", "cm")] == ["Acme"]
    assert [s.name for s in found(admin_client, "/admin/schedules/schedule/", "export")] == ["Nightly export"]
    assert [u.username for u in found(admin_client, "/admin/auth/user/", "lic")] == ["alice"]


# --- PostgreSQL: what the planner does with a search on a table of some size --------------------


def _grow_jobs(team, count: int) -> None:
    # Straight in SQL: 20,000 ORM inserts would be most of the test's time.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO jobs_job (public_id, team_id, handler, handler_version, payload, source, status, priority, "
            "progress_current, progress_message, cost_estimate, pulse_state, error_code, error_message, error_details, "
            "attempts, max_attempts, timeout_seconds, worker, hold_reasons, cancel_requested, request_hash, "
            "created_by, origin, created_at, updated_at) "
            "SELECT 'JB_' || lpad(g::text, 26, '0'), %s, 'pulse.noop', '1', '{}', 'api', 'completed', 0, 0, '', 0, "
            "'{}', '', '', '{}', 1, 1, 300, '', '[]', false, '', '', '', now(), now() FROM generate_series(1, %s) g",
            [team.pk, count])
        cursor.execute("INSERT INTO jobs_tasklog (job_id, attempt, stage, task, level, message, metadata, created_at) "
                       "SELECT id, 1, 'run', '', 'info', 'line ' || id, '{}', now() FROM jobs_job")


@pytest.mark.postgres
@pytest.mark.parametrize(("url", "table", "term", "most"), [
    ("/admin/jobs/job/", "jobs_job", "JB_00000000000000000000012345", 1),
    # 3 found, team by team: EXPLAIN gives each probe's average, rounded, so a probe may count 2.
    ("/admin/jobs/job/", "jobs_job", "legacy.export", 3 + 2),
    ("/admin/jobs/job/", "jobs_job", "umbrella", 3),
    ("/admin/jobs/tasklog/", "jobs_tasklog", "JB_00000000000000000000012345", 1),
    ("/admin/jobs/tasklog/", "jobs_tasklog", "JB_00000000000000000000012345 line", 1),
], ids=["job-id", "handler", "team", "log-lines-of-a-job", "words-in-a-jobs-lines"])
def test_a_search_on_twenty_thousand_jobs_reads_only_the_rows_it_finds(admin_client, acme, umbrella, url, table,
                                                                      term, most):
    """EXPLAIN ANALYZE of every query the changelist ran on the table: the rows it read, not just
    the plan's node names (a backward walk of the primary key that filters 20,000 rows is an
    "Index Scan" too). The row counts are exact whatever plan the statistics lead to."""
    if connection.vendor != "postgresql":
        pytest.skip("the plans are PostgreSQL's")
    _grow_jobs(acme, 20_000)
    _jobs(umbrella, 3, handler="legacy.export")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
        cursor.execute("ANALYZE jobs_tasklog")
        # As autovacuum has it on a real install: never analyzed, the teams table was guessed at
        # 130 rows, and a probe per team cost more than reading 20,000 jobs (the plan then
        # depended on whether earlier tests had got autovacuum to analyze it).
        cursor.execute("ANALYZE teams_team")

    with CaptureQueriesContext(connection) as queries:
        rows = found(admin_client, url, term)
    assert rows

    on_table = [q["sql"] for q in queries.captured_queries if f'FROM "{table}"' in q["sql"]]
    assert len(on_table) >= 2  # the capped count and the page
    for sql in on_table:
        assert_reads_at_most(sql, table, most)


@pytest.mark.postgres
def test_the_runs_list_first_page_reads_its_hundred_rows_not_every_run(admin_client, acme):
    """The list is in the model's order (newest slot first): without an index in that order every
    run was read and sorted for each page."""
    if connection.vendor != "postgresql":
        pytest.skip("the plans are PostgreSQL's")
    schedule = schedule_create(team=acme, name="Every minute", handler="pulse.noop", cron="* * * * *")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO schedules_execution (public_id, schedule_id, team_id, fire_time, trigger, outcome, reason, "
            "created_at, ended) SELECT 'EX_' || lpad(g::text, 26, '0'), %s, %s, now() - g * interval '1 minute', "
            "'cron', 'skipped', '', now(), '' FROM generate_series(1, 20000) g", [schedule.pk, acme.pk])
        cursor.execute("ANALYZE schedules_execution")

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/schedules/execution/")
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 100

    (page,) = [q["sql"] for q in queries.captured_queries
               if 'FROM "schedules_execution"' in q["sql"] and "ORDER BY" in q["sql"]]
    assert_reads_at_most(page, "schedules_execution", 100)


@pytest.mark.postgres
@pytest.mark.parametrize(("query", "most"), [
    # 3 found, team by team (as the search by a handler's name, above).
    ("handler=legacy.export", 3 + 2),
    ("handler=legacy.export&status=failed", 3 + 2),
    ("status=failed", 3),
    ("team__id__exact={umbrella}", 3),
    # Team by team in job_team_error_code_id, which holds only the jobs that ended with a code.
    ("error_code__exact=timeout", 3 + 2),
    # Team by team in job_team_source_id.
    ("source__exact=dashboard", 3 + 2),
], ids=["handler", "handler-and-status", "status", "team", "error-code", "source"])
def test_a_filter_on_twenty_thousand_jobs_reads_only_the_rows_it_finds(admin_client, acme, umbrella, query, most):
    """The handler filter asked `handler = ?` of the whole table: its capped count read every job
    for a handler with fewer than 10,000 (the index leads with the team); the error code filter
    read every job to find none for a code no job ended with (0.4 s at a million jobs), the source
filter for a source no job came from (0.3 s)."""
    if connection.vendor != "postgresql":
        pytest.skip("the plans are PostgreSQL's")
    _grow_jobs(acme, 20_000)
    _jobs(umbrella, 3, handler="legacy.export", status="failed", error_code="timeout", source="dashboard")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
        cursor.execute("ANALYZE teams_team")  # (as above)

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(f"/admin/jobs/job/?{query.format(umbrella=umbrella.pk)}")
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 3

    on_table = [q["sql"] for q in queries.captured_queries if 'FROM "jobs_job"' in q["sql"]]
    assert len(on_table) >= 2  # the capped count and the page
    for sql in on_table:
        assert_reads_at_most(sql, "jobs_job", most)


def _grow_events_and_usage(team, count: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO live_event (team_id, kind, subject, payload, created_at) SELECT %s, "
                       "'job.completed', 'JB_' || lpad(g::text, 26, '0'), '{}', now() FROM generate_series(1, %s) g",
                       [team.pk, count])
        cursor.execute("INSERT INTO budgets_usage (team_id, scope, kind, window_start, window_end, committed, reserved) "
                       "SELECT %s, 'h' || (g %% 50), 'day', now() - g * interval '1 day', now(), 1, 0 "
                       "FROM generate_series(1, %s) g", [team.pk, count])
        for table in ("live_event", "budgets_usage", "teams_team"):
            cursor.execute(f"ANALYZE {table}")


@pytest.mark.postgres
@pytest.mark.parametrize(("url", "table", "most"), [
    # The rare events' index, team by team: the three found among the teams' few rare events.
    ("/admin/live/event/?family=budget", "live_event", 3),
    # The newest hundred windows: not every window sorted by its team's name.
    ("/admin/budgets/usage/", "budgets_usage", 100),
], ids=["event-family", "usage-first-page"])
def test_a_list_of_twenty_thousand_events_or_windows_reads_only_the_rows_it_shows(admin_client, acme, umbrella, url,
                                                                                   table, most):
    """An event family's filter read every event (kind LIKE 'budget.%' of the whole outbox), and the
    usage list's first page sorted every window by its team's name."""
    if connection.vendor != "postgresql":
        pytest.skip("the plans are PostgreSQL's")
    from pulse_site.live.services import event_emit

    _grow_events_and_usage(acme, 20_000)
    for _ in range(3):
        event_emit(team=umbrella.pk, kind="budget.policy", subject="", payload={})

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == most

    on_table = [q["sql"] for q in queries.captured_queries if f'FROM "{table}"' in q["sql"]]
    if "family" in url:
        # Every team's rare events at most (the index's range is the team's; LIKE filters it), and
        # one more a team: EXPLAIN gives each probe's average, rounded.
        from pulse_site.live.models import RARE_EVENTS, Event
        from pulse_site.teams.models import Team

        rare = Event.objects.filter(RARE_EVENTS).count()
        assert rare < 20
        for sql in on_table:
            assert_reads_at_most(sql, table, rare + Team.objects.count())
    else:
        (page,) = [sql for sql in on_table if "ORDER BY" in sql]
        assert_reads_at_most(page, table, most)
