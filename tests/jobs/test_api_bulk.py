"""The API's delete and bulk actions: what the dashboard's buttons do, for a token."""

from __future__ import annotations

import pytest

from jobs import bulk
from jobs.bulk import NOT_A_BATCH_CURSOR
from jobs.models import Attempt, Job
from pulse_site.live.models import Event

S = Job.Status


def post(client, path, body):
    return client.post(f"/api/v1/{path}", body, format="json")


def jobs(team, n: int, status: str = S.FAILED, handler: str = "pulse.fail") -> list[Job]:
    return Job.objects.bulk_create([
        Job(team=team, handler=handler, status=status, attempts=1, max_attempts=1,
            error_code="unknown" if status == S.FAILED else "")
        for _ in range(n)
    ])


def test_delete_removes_a_finished_job_and_refuses_an_unfinished_one(acme, acme_api):
    [done] = jobs(acme, 1, status=S.COMPLETED)
    Attempt.objects.create(job=done, number=1, worker="w")
    [queued] = jobs(acme, 1, status=S.QUEUED)

    gone = acme_api.delete(f"/api/v1/jobs/{done.public_id}/")
    kept = acme_api.delete(f"/api/v1/jobs/{queued.public_id}/")

    assert gone.status_code == 204 and not gone.content
    assert not Job.objects.filter(pk=done.pk).exists() and not Attempt.objects.filter(job_id=done.pk).exists()
    assert Event.objects.filter(subject=done.public_id, kind="job.deleted").exists()
    assert kept.status_code == 409 and kept.json()["error"]["code"] == "job_not_finished"
    assert Job.objects.filter(pk=queued.pk).exists()
    assert acme_api.get(f"/api/v1/jobs/{done.public_id}/").status_code == 404


def test_delete_is_for_write_tokens_of_the_jobs_team_only(acme, globex, acme_api_read, globex_api):
    [done] = jobs(acme, 1, status=S.COMPLETED)

    assert acme_api_read.delete(f"/api/v1/jobs/{done.public_id}/").status_code == 403
    theirs = globex_api.delete(f"/api/v1/jobs/{done.public_id}/")
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
    assert Job.objects.filter(pk=done.pk).exists()


def test_bulk_acts_on_each_job_named_and_says_why_it_refused_the_others(acme, globex, acme_api):
    queued, running = jobs(acme, 1, status=S.QUEUED)[0], jobs(acme, 1, status=S.RUNNING)[0]
    [completed] = jobs(acme, 1, status=S.COMPLETED)
    [theirs] = jobs(globex, 1, status=S.QUEUED)

    response = post(acme_api, "jobs/bulk/", {"action": "cancel", "ids": [
        queued.public_id, completed.public_id, theirs.public_id, "JB_01NOSUCHJOB0000000000000", queued.public_id]})

    assert response.status_code == 200
    body = response.json()
    assert body["done"] == [queued.public_id] and body["cursor"] is None
    refused = {r["id"]: r["code"] for r in body["refused"]}
    # Another team's job is refused exactly like one that does not exist.
    assert refused == {completed.public_id: "job_finished", theirs.public_id: "not_found",
                       "JB_01NOSUCHJOB0000000000000": "not_found"}
    assert Job.objects.get(pk=queued.pk).status == S.CANCELLED
    assert Job.objects.get(pk=running.pk).status == S.RUNNING
    assert Job.objects.get(pk=theirs.pk).status == S.QUEUED


@pytest.mark.parametrize(("body", "field"), [
    ({"action": "explode", "ids": ["JB_1"]}, "action"),
    ({"action": "cancel", "ids": []}, "ids"),
    ({"action": "cancel", "ids": ["JB_x"] * 201}, "ids"),
    ({"action": "cancel", "ids": "JB_1"}, "ids"),
    ({"action": "cancel"}, "ids"),
    ({"action": "cancel", "ids": ["JB_1"], "force": True}, "force"),
])
def test_a_bad_bulk_request_is_a_400_naming_the_field_and_touches_nothing(acme, acme_api, body, field):
    [queued] = jobs(acme, 1, status=S.QUEUED)
    body = {**body, "ids": [queued.public_id if i == "JB_1" else i for i in body["ids"]]} \
        if isinstance(body.get("ids"), list) else body

    response = post(acme_api, "jobs/bulk/", body)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert Job.objects.get(pk=queued.pk).status == S.QUEUED


def test_bulk_is_for_write_tokens(acme, acme_api_read):
    [queued] = jobs(acme, 1, status=S.QUEUED)
    assert post(acme_api_read, "jobs/bulk/", {"action": "cancel", "ids": [queued.public_id]}).status_code == 403
    assert post(acme_api_read, "jobs/bulk/matching/", {"action": "cancel", "filter": {}}).status_code == 403
    assert Job.objects.get(pk=queued.pk).status == S.QUEUED


def test_bulk_matching_retries_every_matching_job_batch_by_batch(acme, globex, acme_api):
    jobs(acme, 250)
    other_handler = jobs(acme, 2, handler="pulse.noop")
    theirs = jobs(globex, 3)
    filter_ = {"status": "failed", "handler": "pulse.fail"}

    first = post(acme_api, "jobs/bulk/matching/", {"action": "retry", "filter": filter_}).json()
    second = post(acme_api, "jobs/bulk/matching/", {"action": "retry", "filter": filter_, "cursor": first["cursor"]})

    assert len(first["done"]) == 200 and first["refused"] == [] and first["cursor"]
    assert second.status_code == 200
    assert len(second.json()["done"]) == 50 and second.json()["cursor"] is None
    assert Job.objects.filter(team=acme, handler="pulse.fail", status=S.QUEUED).count() == 250
    assert set(Job.objects.filter(pk__in=[j.pk for j in other_handler + theirs]).values_list("status", flat=True)) \
        == {S.FAILED}


def test_bulk_matching_deletes_past_a_batch_that_deleted_its_own_last_job(acme, acme_api):
    jobs(acme, 230, status=S.COMPLETED)

    first = post(acme_api, "jobs/bulk/matching/", {"action": "delete", "filter": {"status": "completed"}}).json()
    second = post(acme_api, "jobs/bulk/matching/", {"action": "delete", "filter": {"status": "completed"},
                                                    "cursor": first["cursor"]}).json()

    assert (len(first["done"]), len(second["done"]), second["cursor"]) == (200, 30, None)
    assert not Job.objects.filter(team=acme).exists()


def test_bulk_matching_reads_the_search_words_like_the_list(acme, acme_api):
    payload_jobs = Job.objects.bulk_create([Job(team=acme, handler="pulse.noop", status=S.QUEUED, payload={"user": u})
                                            for u in (42, "42", 7)])

    body = post(acme_api, "jobs/bulk/matching/", {"action": "cancel", "filter": {"q": "queued user=42"}}).json()

    assert sorted(body["done"]) == sorted(j.public_id for j in payload_jobs[:2])
    assert Job.objects.get(pk=payload_jobs[2].pk).status == S.QUEUED


@pytest.mark.parametrize(("body", "field"), [
    ({"action": "retry"}, "filter"),
    ({"action": "retry", "filter": {"statuss": "failed"}}, "filter.statuss"),
    ({"action": "retry", "filter": {"status": "broken"}}, "filter.status"),
    ({"action": "retry", "filter": {"created_after": "yesterday"}}, "filter.created_after"),
    ({"action": "retry", "filter": {"q": "failed frobnicate"}}, "filter.q"),
    ({"action": "retry", "filter": {"schedule": "nightly"}}, "filter.schedule"),
    ({"action": "retry", "filter": "status=failed"}, "filter"),
    ({"action": "retry", "filter": {}, "cursor": "JB_01NOSUCHJOB0000000000000"}, "cursor"),
    ({"action": "retry", "filter": {}, "cursor": "A" * 5000}, "cursor"),
])
def test_a_bad_matching_request_is_a_400_naming_the_field_and_touches_nothing(acme, acme_api, body, field):
    failed = jobs(acme, 2)

    response = post(acme_api, "jobs/bulk/matching/", body)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"], response.json()
    assert set(Job.objects.filter(pk__in=[j.pk for j in failed]).values_list("status", flat=True)) == {S.FAILED}


def test_another_teams_cursor_or_job_is_no_cursor(acme, globex, acme_api, globex_api, monkeypatch):
    jobs(acme, 2)
    [theirs, _] = jobs(globex, 2)
    monkeypatch.setattr(bulk, "BULK_MAX", 1)
    their_cursor = post(globex_api, "jobs/bulk/matching/", {"action": "cancel", "filter": {}}).json()["cursor"]
    list_cursor = acme_api.get("/api/v1/jobs/?limit=1").json()["next_cursor"]

    for cursor in (their_cursor, theirs.public_id, list_cursor):
        response = post(acme_api, "jobs/bulk/matching/", {"action": "retry", "filter": {}, "cursor": cursor})
        assert response.status_code == 400 and response.json()["error"]["fields"] == {"cursor": [NOT_A_BATCH_CURSOR]}
    assert not Job.objects.filter(team=acme, status=S.QUEUED).exists()


@pytest.mark.parametrize("action", ["retry", "delete"])
def test_bulk_matching_carries_on_when_the_next_batchs_first_job_is_deleted_between_batches(acme, acme_api, action):
    """The cursor named the next batch's first job: deleted meanwhile (by another client, the
    dashboard or the retention), the next batch was a 400 under `cursor` and the action stopped."""
    failed = jobs(acme, 250)  # newest first: the first batch is failed[249] to failed[50]
    first = post(acme_api, "jobs/bulk/matching/", {"action": action, "filter": {"status": "failed"}}).json()
    Job.objects.filter(pk=failed[49].pk).delete()

    second = post(acme_api, "jobs/bulk/matching/", {"action": action, "filter": {"status": "failed"},
                                                    "cursor": first["cursor"]})

    assert second.status_code == 200, second.json()
    assert first["done"] == [j.public_id for j in reversed(failed[50:])]
    assert second.json() == {"done": [j.public_id for j in reversed(failed[:49])], "refused": [], "cursor": None}


def test_bulk_matching_acts_on_no_job_twice_when_jobs_change_between_batches(acme, acme_api):
    """A job of the first batch that matches again when the next is asked for (retried, then
    cancelled) is not acted on twice, and one below the cursor that changed meanwhile is not
    skipped."""
    failed = jobs(acme, 250)
    first = post(acme_api, "jobs/bulk/matching/", {"action": "retry", "filter": {}}).json()
    Job.objects.filter(pk__in=[failed[50].pk, failed[10].pk]).update(status=S.CANCELLED)

    second = post(acme_api, "jobs/bulk/matching/", {"action": "retry", "filter": {},
                                                    "cursor": first["cursor"]}).json()

    assert second == {"done": [j.public_id for j in reversed(failed[:50])], "refused": [], "cursor": None}
    assert Job.objects.get(pk=failed[50].pk).status == S.CANCELLED
