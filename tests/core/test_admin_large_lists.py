"""The lists of the tables that grow without bound, as an operator relies on them at a million
rows: they are sorted only in an order an index serves (a click on another column sorted the
whole table, 0.5-1.6 s at 1,000,000 jobs: bench/HISTORY.md, session 22), their filters still
filter, and a staff member reaches only what their permissions name."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from jobs.models import Attempt, Job
from pulse_site.admin_lists import LargeTableAdmin
from tests.conftest import staff_client
from tests.core.test_admin_queries import _team_with_one_of_everything

LARGE = sorted(f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
               for model, model_admin in admin.site._registry.items() if isinstance(model_admin, LargeTableAdmin))

# The columns each list may be sorted by: those whose order an index serves whatever the filter.
SORTABLE = {"/admin/live/event/": ["id"]}


def _sortable_columns(page) -> list[str]:
    return re.findall(r'<th scope="col" class="sortable[^"]*column-([\w]+)', page.content.decode())


def _failed(team, code: str) -> Job:
    return Job.objects.create(team=team, handler="pulse.fail", status="failed", error_code=code)


def test_every_unbounded_list_is_here():
    assert LARGE == ["/admin/budgets/ledger/", "/admin/budgets/usage/", "/admin/jobs/attempt/", "/admin/jobs/job/",
                     "/admin/jobs/tasklog/", "/admin/live/event/", "/admin/schedules/execution/"]


@pytest.mark.parametrize("url", LARGE)
def test_an_unbounded_list_offers_sorting_only_by_a_column_an_index_orders(admin_client, url):
    _team_with_one_of_everything(1)

    page = admin_client.get(url)

    assert page.status_code == 200
    assert _sortable_columns(page) == SORTABLE.get(url, [])


def test_a_sort_asked_in_the_address_by_another_column_is_not_run_and_the_newest_come_first(admin_client, acme):
    older = Job.objects.create(team=acme, handler="pulse.sleep", status="completed")
    newer = Job.objects.create(team=acme, handler="pulse.noop", status="completed")

    # Column 3 is the handler (0 is the selection box): a sort of the whole table by it.
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get("/admin/jobs/job/?o=3")

    text = page.content.decode()
    assert page.status_code == 200
    assert text.index(newer.public_id) < text.index(older.public_id)
    assert not [q["sql"] for q in queries.captured_queries if re.search(r'ORDER BY[^)]*"handler"', q["sql"])]


def test_the_job_lists_error_code_filter_finds_that_codes_jobs_of_every_team_and_no_other(admin_client, acme,
                                                                                            globex):
    ours, theirs = _failed(acme, "timeout"), _failed(globex, "timeout")
    other, completed = _failed(acme, "network_error"), Job.objects.create(team=acme, handler="pulse.noop",
                                                                           status="completed")

    text = admin_client.get("/admin/jobs/job/?error_code__exact=timeout").content.decode()

    assert ours.public_id in text and theirs.public_id in text
    assert other.public_id not in text and completed.public_id not in text


def test_the_job_lists_error_code_filter_offers_every_code_and_finds_none_for_an_unused_one(admin_client, acme):
    _failed(acme, "timeout")

    page = admin_client.get("/admin/jobs/job/?error_code__exact=budget_exceeded")

    assert page.status_code == 200
    assert "0 jobs" in page.content.decode()
    assert "?error_code__exact=network_error" in admin_client.get("/admin/jobs/job/").content.decode()


ADMIN_URLS = ["/admin/", "/admin/jobs/job/", "/admin/jobs/attempt/", "/admin/jobs/tasklog/", "/admin/live/event/",
              "/admin/budgets/ledger/", "/admin/budgets/usage/", "/admin/schedules/execution/",
              "/admin/schedules/schedule/", "/admin/teams/team/", "/admin/auth/user/"]


def test_a_signed_in_user_who_is_not_staff_is_sent_to_sign_in_from_every_admin_page(acme, alice):
    job = _failed(acme, "timeout")
    client = Client()
    client.force_login(alice)  # acme's owner, not staff

    answers = [client.get(url) for url in [*ADMIN_URLS, f"/admin/jobs/job/{job.pk}/change/"]]

    assert [a.status_code for a in answers] == [302] * (len(ADMIN_URLS) + 1)
    assert all(a["Location"].startswith("/admin/login/") for a in answers)


def test_a_staff_member_who_may_view_jobs_reaches_the_jobs_and_nothing_else(acme):
    job = _failed(acme, "timeout")
    attempt = Attempt.objects.create(job=job, number=1, outcome="failed")
    client = staff_client("watcher", "view_job")

    index = client.get("/admin/").content.decode()
    jobs, page = client.get("/admin/jobs/job/"), client.get(f"/admin/jobs/job/{job.pk}/change/")
    others = sorted(f"/admin/{model._meta.app_label}/{model._meta.model_name}/" for model in admin.site._registry
                    if model is not Job)
    elsewhere = {url: client.get(url).status_code for url in others}

    assert jobs.status_code == 200 and page.status_code == 200 and job.public_id in jobs.content.decode()
    assert set(re.findall(r'href="(/admin/\w+/\w+/)"', index)) == {"/admin/jobs/job/"}
    assert len(others) > 20 and elsewhere == {url: 403 for url in others}
    assert client.get(f"/admin/jobs/attempt/{attempt.pk}/change/").status_code == 403
    # The teams, through the job's team field (Django's autocomplete asks for the team's view permission).
    assert client.get("/admin/autocomplete/?app_label=jobs&model_name=job&field_name=team").status_code == 403


def test_the_job_lists_source_filter_finds_that_sources_jobs_of_every_team_and_no_other(admin_client, acme, globex):
    ours = Job.objects.create(team=acme, handler="pulse.noop", source="dashboard")
    theirs = Job.objects.create(team=globex, handler="pulse.noop", source="dashboard")
    other = Job.objects.create(team=acme, handler="pulse.noop", source="api")

    page = admin_client.get("/admin/jobs/job/?source__exact=dashboard")
    listing = admin_client.get("/admin/jobs/job/").content.decode()

    text = page.content.decode()
    assert ours.public_id in text and theirs.public_id in text and other.public_id not in text
    assert all(f"?source__exact={source}" in listing for source in Job.Source.values)
