"""The jobs list with filters no index serves (payload terms, source, creation time) looks at a
bounded number of jobs per page and carries on from a cursor, never skipping or repeating a job."""

from __future__ import annotations

import pytest
from django.db import connection

from jobs import selectors
from jobs.models import Job
from jobs.selectors import JobFilter
from pulse_site import paging


@pytest.fixture
def small_windows(monkeypatch):
    # Windows of 3 jobs, 6 jobs looked at per page: the same code path as 20,000 / 100,000.
    monkeypatch.setattr(paging, "SCAN_WINDOW", 3)
    monkeypatch.setattr(paging, "SCAN_BUDGET", 6)


def _jobs(team, payloads: list[dict]) -> list[Job]:
    return [Job.objects.create(team=team, handler="pulse.noop", payload=p, status=Job.Status.COMPLETED)
            for p in payloads]


def _walk(team, filters: JobFilter, limit: int) -> tuple[list[list[str]], list[str]]:
    pages, cursor = [], None
    while True:
        page, cursor = selectors.jobs_list(team=team, filters=filters, before=cursor, limit=limit)
        pages.append([job.public_id for job in page])
        if cursor is None:
            return pages, [job_id for p in pages for job_id in p]


def test_a_rare_payload_term_is_found_page_by_page_in_order(acme, globex, small_windows):
    jobs = _jobs(acme, [{"user": 42 if n in (1, 2, 14) else n} for n in range(20)])
    _jobs(globex, [{"user": 42}] * 5)

    pages, found = _walk(acme, JobFilter(payload=(("user", "42"),)), limit=2)

    assert found == [jobs[14].public_id, jobs[2].public_id, jobs[1].public_id]
    assert max(len(page) for page in pages) <= 2
    if connection.vendor != "postgresql":  # there the GIN index job_payload_path finds them, unwindowed
        # The newest six jobs hold one match: a short page whose cursor carries on below them.
        assert pages[0] == [jobs[14].public_id]


def test_a_page_of_common_matches_stops_at_the_limit_with_a_cursor(acme, small_windows):
    jobs = _jobs(acme, [{"region": "eu"}] * 10)

    page, cursor = selectors.jobs_list(team=acme, filters=JobFilter(payload=(("region", "eu"),)), limit=4)

    assert [j.public_id for j in page] == [j.public_id for j in reversed(jobs[6:])]
    following, _ = selectors.jobs_list(team=acme, filters=JobFilter(payload=(("region", "eu"),)), before=cursor,
                                       limit=4)
    assert [j.public_id for j in following] == [j.public_id for j in reversed(jobs[2:6])]


def test_a_filter_matching_nothing_ends_without_a_cursor_once_the_history_is_read(acme, small_windows):
    _jobs(acme, [{}] * 7)

    pages, found = _walk(acme, JobFilter(source=Job.Source.DASHBOARD), limit=5)

    assert found == []
    assert len(pages) == 2  # 6 jobs looked at, then the last one


def test_without_small_windows_every_match_comes_on_the_first_page(acme):
    jobs = _jobs(acme, [{"user": 42}, {}, {"user": 42}])

    page, cursor = selectors.jobs_list(team=acme, filters=JobFilter(payload=(("user", "42"),)), limit=50)

    assert [j.public_id for j in page] == [jobs[2].public_id, jobs[0].public_id]
    assert cursor is None


def test_the_lists_count_of_a_source_filter_looks_at_the_newest_jobs_only(acme, alice_client, monkeypatch):
    from jobs import views

    monkeypatch.setattr(views, "COUNT_SCAN", 3)
    for source in ("dashboard", "api", "dashboard", "api", "dashboard", "dashboard"):
        Job.objects.create(team=acme, handler="pulse.noop", source=source, status=Job.Status.COMPLETED)

    response = alice_client.get("/jobs/?source=dashboard")

    assert response.status_code == 200
    assert response.context["count_windowed"] is True
    assert response.context["matching"] == 2  # of the newest three jobs (the list itself shows all four)
    assert len(response.context["rows"]) == 4
