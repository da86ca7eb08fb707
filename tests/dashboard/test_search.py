"""The header's search: an id goes straight to its page, words filter the jobs list."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from jobs.models import Job
from schedules.models import Execution
from schedules.services import schedule_create

S = Job.Status


def search(client, q: str):
    return client.get(reverse("search"), {"q": q})


def test_a_job_id_opens_the_job(alice_client, make_job):
    job = make_job()
    assert search(alice_client, f" {job.public_id} ").url == f"/jobs/{job.public_id}/"


def test_a_schedule_id_opens_the_schedule_and_an_execution_id_its_job_or_else_its_schedule(alice_client, acme, make_job):
    schedule = schedule_create(team=acme, name="nightly", handler="pulse.noop", cron="0 3 * * *")
    job = make_job()
    with_job = Execution.objects.create(schedule=schedule, team=acme, fire_time=job.created_at, job=job)
    skipped = Execution.objects.create(schedule=schedule, team=acme, fire_time=job.created_at.replace(year=2020),
                                       outcome="skipped")

    assert search(alice_client, schedule.public_id).url == f"/schedules/{schedule.public_id}/"
    assert search(alice_client, with_job.public_id).url == f"/jobs/{job.public_id}/"
    assert search(alice_client, skipped.public_id).url == f"/schedules/{schedule.public_id}/"


def test_charlie_searching_acmes_ids_is_told_nothing_has_that_name(charlie_client, acme, make_job):
    job = make_job()
    schedule = schedule_create(team=acme, name="nightly", handler="pulse.noop", cron="0 3 * * *")
    execution = Execution.objects.create(schedule=schedule, team=acme, fire_time=job.created_at, job=job)

    ids = (job.public_id, schedule.public_id, execution.public_id)
    assert [search(charlie_client, public_id).url for public_id in ids] == ["/jobs/"] * 3
    page = charlie_client.get("/jobs/")
    assert [str(m) for m in page.context["messages"]] == [f"Nothing called “{i}” in this team." for i in ids]
    assert page.context["rows"] == []


def test_words_become_a_jobs_filter_on_status_handler_and_payload(alice_client, acme, globex, make_job):
    wanted = make_job(handler="pulse.fail", status=S.FAILED, payload={"user": 42, "region": "eu"})
    as_text = make_job(handler="pulse.fail", status=S.FAILED, payload={"user": "42", "region": "eu"})
    make_job(handler="pulse.fail", status=S.FAILED, payload={"user": 43, "region": "eu"})
    make_job(handler="pulse.fail", status=S.COMPLETED, payload={"user": 42, "region": "eu"})
    make_job(handler="pulse.noop", status=S.FAILED, payload={"user": 42, "region": "eu"})
    make_job(team=globex, handler="pulse.fail", status=S.FAILED, payload={"user": 42, "region": "eu"})

    assert search(alice_client, "failed pulse.fail user=42 region=eu").url == (
        "/jobs/?q=failed+pulse.fail+user%3D42+region%3Deu")
    response = alice_client.get("/jobs/", {"q": "failed pulse.fail user=42 region=eu"})

    assert [row.job.public_id for row in response.context["rows"]] == [as_text.public_id, wanted.public_id]


def test_held_means_paused_and_a_word_that_is_nothing_known_is_reported(alice_client, make_job):
    held = make_job(status=S.PAUSED)
    make_job(status=S.QUEUED)

    assert [row.job.public_id for row in alice_client.get("/jobs/", {"q": "held"}).context["rows"]] == [held.public_id]
    response = alice_client.get("/jobs/", {"q": "held nonsense a__contains=1"})

    # Not the jobs of the words that could be read: the search did not say what was meant.
    assert response.context["rows"] == []
    assert "The filter could not be read (see above), so no jobs are shown." in response.content.decode()
    assert [str(m) for m in response.context["messages"]] == [
        "“nonsense” is not a status, a handler, an error code or key=value.",
        "“a__contains” is not a payload key (letters, digits, _ and -).",
    ]


def test_the_search_box_is_on_every_page_with_its_syntax(alice_client, acme):
    for url in ("/", "/jobs/", "/schedules/", "/budget/", "/team/"):
        html = alice_client.get(url).content.decode()
        assert 'id="site-search-q"' in html and "key=value" in html, url


def test_a_payload_term_matches_the_number_and_the_string_but_not_nested_or_other_keys(alice_client, make_job):
    number = make_job(payload={"user": 42, "region": "eu"})
    string = make_job(payload={"user": "42"})
    make_job(payload={"user": 421})
    make_job(payload={"owner": {"user": 42}})
    make_job(payload={"users": 42})
    html = alice_client.get("/jobs/", {"q": "user=42"}).content.decode()
    assert sorted(re.findall(r'data-job-id="(JB_\w+)"', html)) == sorted([number.public_id, string.public_id])


@pytest.mark.postgres
def test_the_payload_search_is_served_by_the_gin_index_on_postgresql(acme, make_job):
    from django.db import connection

    from jobs.selectors import JobFilter, jobs_matching

    if connection.vendor != "postgresql":
        pytest.skip("GIN (jsonb_path_ops) is PostgreSQL's; SQLite searches the payload unindexed")
    Job.objects.bulk_create([Job(team=acme, handler="pulse.noop", payload={"user": n % 500, "region": "eu"})
                             for n in range(5_000)])
    make_job(payload={"user": "rare-one"})
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    rows = jobs_matching(team=acme, filters=JobFilter(payload=(("user", "rare-one"),)))
    plan = rows.order_by("-pk")[:51].explain()
    assert "job_payload_path" in plan, plan
    assert [job.payload for job in rows] == [{"user": "rare-one"}]


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400", "99999999999999999999999"])
def test_a_value_json_reads_as_no_number_a_payload_holds_matches_as_text(alice_client, acme_api, make_job, text):
    """json.loads reads these as NaN, an infinity or an integer past 64 bits: never put to the database as such."""
    wanted = make_job(payload={"n": text})
    make_job(payload={"n": 1})
    query = {"q": f"n={text}"}

    assert [row.job.public_id for row in alice_client.get("/jobs/", query).context["rows"]] == [wanted.public_id]
    assert search(alice_client, f"n={text}").status_code == 302
    export = alice_client.get("/jobs/export.csv", query)
    assert export.status_code == 200 and wanted.public_id in export.content.decode()
    assert [job["id"] for job in acme_api.get("/api/v1/jobs/", query).json()["results"]] == [wanted.public_id]


def test_an_id_in_lower_case_opens_it_and_a_mistyped_one_is_no_such_thing(alice_client, make_job):
    job = make_job()
    assert search(alice_client, job.public_id.lower()).url == f"/jobs/{job.public_id}/"
    for typo in ("JB_NOTEXIST", "sp_123", "EX_"):
        response = alice_client.get(reverse("search"), {"q": typo}, follow=True)
        assert response.redirect_chain == [("/jobs/", 302)]
        assert [str(m) for m in response.context["messages"]] == [f"Nothing called “{typo}” in this team."]
