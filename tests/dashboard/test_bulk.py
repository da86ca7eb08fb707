"""Bulk actions on every job matching the list's filter, in batches, through the services."""

from __future__ import annotations

import pytest
from django.urls import reverse

from jobs import views
from jobs.bulk import NOT_A_BATCH_CURSOR
from jobs.models import Attempt, Job, TaskLog
from jobs.services import job_delete
from pulse_site.errors import Conflict
from pulse_site.paging import MAX_CURSOR

S = Job.Status


def post_batch(client, query: str, action: str, cursor: str = "", confirm: bool = True):
    data = {"action": action, "cursor": cursor}
    if confirm:
        data["confirm"] = "on"
    return client.post(reverse("jobs:bulk_matching") + "?" + query, data, HTTP_ACCEPT="application/json")


def failed_jobs(team, n: int, handler: str = "pulse.fail") -> list[Job]:
    return Job.objects.bulk_create([
        Job(team=team, handler=handler, status=S.FAILED, attempts=1, max_attempts=1, error_code="unknown")
        for _ in range(n)
    ])


def test_retry_all_failed_matching_runs_in_batches_of_200_until_none_are_left(alice_client, acme, make_job):
    failed_jobs(acme, 250)
    other_handler = failed_jobs(acme, 2, handler="pulse.noop")
    done = make_job(handler="pulse.fail", status=S.COMPLETED)

    first = post_batch(alice_client, "status=failed&handler=pulse.fail", "retry").json()
    second = post_batch(alice_client, "status=failed&handler=pulse.fail", "retry", cursor=first["cursor"]).json()

    assert {k: first[k] for k in ("processed", "done", "refused")} == {"processed": 200, "done": 200, "refused": 0}
    assert first["cursor"]
    assert second == {"processed": 50, "done": 50, "refused": 0, "cursor": None}
    assert Job.objects.filter(team=acme, handler="pulse.fail", status=S.QUEUED).count() == 250
    assert set(Job.objects.filter(pk__in=[j.pk for j in other_handler]).values_list("status", flat=True)) == {S.FAILED}
    assert Job.objects.get(pk=done.pk).status == S.COMPLETED


def test_without_the_script_one_batch_runs_and_the_message_says_what_happened(alice_client, acme, make_job):
    make_job(status=S.QUEUED)
    make_job(status=S.COMPLETED)

    response = alice_client.post(reverse("jobs:bulk_matching") + "?status=&handler=pulse.noop",
                                 {"action": "cancel", "confirm": "on"})

    assert response.url == "/jobs/?status=&handler=pulse.noop"
    assert [str(m) for m in response.wsgi_request._messages] == [
        "1 cancelled, 1 refused: The job is already completed; only queued, held or running jobs can be cancelled (1)."]


def test_nothing_happens_without_the_confirmation(alice_client, acme):
    failed_jobs(acme, 3)

    response = post_batch(alice_client, "status=failed", "retry", confirm=False)

    assert response.status_code == 400
    assert response.json() == {"errors": ["Confirm the action on all matching jobs."]}
    assert Job.objects.filter(status=S.FAILED).count() == 3


def test_delete_removes_finished_jobs_with_their_attempts_and_logs_and_refuses_unfinished_ones(alice_client, acme, make_job):
    finished = make_job(status=S.COMPLETED)
    Attempt.objects.create(job=finished, number=1, outcome="completed")
    TaskLog.objects.create(job=finished, message="done")
    running = make_job(status=S.RUNNING)

    result = post_batch(alice_client, "", "delete").json()

    assert result == {"processed": 2, "done": 1, "refused": 1, "cursor": None}
    assert list(Job.objects.filter(team=acme).values_list("pk", flat=True)) == [running.pk]
    assert not Attempt.objects.exists() and not TaskLog.objects.exists()
    with pytest.raises(Conflict):
        job_delete(job=running)


def test_delete_all_matching_carries_on_past_a_batch_whose_last_job_it_deleted(alice_client, acme):
    failed_jobs(acme, 250)

    first = post_batch(alice_client, "status=failed", "delete").json()
    second = post_batch(alice_client, "status=failed", "delete", cursor=first["cursor"]).json()

    assert {k: first[k] for k in ("processed", "done", "refused")} == {"processed": 200, "done": 200, "refused": 0}
    assert second == {"processed": 50, "done": 50, "refused": 0, "cursor": None}
    assert not Job.objects.filter(team=acme).exists()


def test_a_cursor_no_batch_of_the_team_gave_is_refused_by_name(alice_client, acme, charlie, globex):
    theirs = Job.objects.create(team=globex, handler="pulse.fail", status=S.FAILED)
    failed_jobs(acme, 3)
    for cursor in (theirs.public_id, "JB_nope", "x" * (MAX_CURSOR + 1)):
        response = post_batch(alice_client, "status=failed", "retry", cursor=cursor)
        assert response.status_code == 400 and response.json() == {"errors": [f"cursor: {NOT_A_BATCH_CURSOR}"]}
    assert Job.objects.filter(team=acme, status=S.FAILED).count() == 3


def test_retry_all_matching_carries_on_over_every_other_job_when_the_next_one_is_deleted_between_batches(
        alice_client, acme):
    failed = failed_jobs(acme, 250)
    first = post_batch(alice_client, "status=failed", "retry").json()
    Job.objects.filter(pk=failed[49].pk).delete()  # the next batch's first, deleted by someone else

    second = post_batch(alice_client, "status=failed", "retry", cursor=first["cursor"])

    assert second.status_code == 200, second.json()
    assert second.json() == {"processed": 49, "done": 49, "refused": 0, "cursor": None}
    assert Job.objects.filter(team=acme, status=S.QUEUED).count() == 249
    assert not Job.objects.filter(team=acme, status=S.FAILED).exists()


def test_the_list_offers_all_matching_with_a_count_capped_for_huge_filters(alice_client, acme, monkeypatch):
    failed_jobs(acme, 4)

    exact = alice_client.get("/jobs/?status=failed").content.decode()
    monkeypatch.setattr(views, "COUNT_CAP", 3)
    capped = alice_client.get("/jobs/?status=failed").content.decode()

    assert '<strong id="matching-count">4</strong> jobs matching this filter' in exact
    assert '<strong id="matching-count">more than 3</strong>' in capped


def test_viewers_cannot_and_charlie_only_reaches_globex(vic_client, charlie_client, acme, globex):
    ours = failed_jobs(acme, 3)
    theirs = failed_jobs(globex, 1)

    assert post_batch(vic_client, "status=failed", "retry").status_code == 403
    result = post_batch(charlie_client, "status=failed", "retry").json()

    assert result["done"] == 1
    assert set(Job.objects.filter(pk__in=[j.pk for j in ours]).values_list("status", flat=True)) == {S.FAILED}
    assert Job.objects.get(pk=theirs[0].pk).status == S.QUEUED


def test_a_payload_filter_is_counted_among_the_newest_jobs_only_and_says_so(alice_client, acme, make_job, monkeypatch):
    for n in range(4):
        make_job(status=S.FAILED, payload={"user": 7 if n % 2 else 8})
    monkeypatch.setattr(views, "COUNT_SCAN", 2)

    html = alice_client.get("/jobs/", {"q": "user=7"}).content.decode()

    # The two newest jobs hold one user=7; the older one matches too and is in the list.
    assert '<strong id="matching-count">1</strong> job matching this filter among the newest 2' in html
    assert html.count('name="ids"') == 2


@pytest.mark.parametrize("query", ["status=bogus", "created_after=garbage", "schedule=SP_x", "q=nonsense",
                                   "status=failed&error_code=nope"])
def test_a_filter_that_cannot_be_read_acts_on_nothing_and_says_which_field(alice_client, acme, query):
    """Not the filter without its unreadable part (every job of the team)."""
    failed_jobs(acme, 3)
    queued = failed_jobs(acme, 2, handler="pulse.noop")
    Job.objects.filter(pk__in=[j.pk for j in queued]).update(status=S.QUEUED)

    for action in ("cancel", "retry", "delete"):
        response = post_batch(alice_client, query, action)
        assert response.status_code == 400, (query, action)
        assert response.json()["errors"][0].split(":")[0] in ("Status", "From (UTC)", "Schedule id", "Error",
                                                                "“nonsense” is not a status, a handler, an error code or key=value.")

    assert Job.objects.filter(team=acme, status=S.FAILED).count() == 3
    assert Job.objects.filter(team=acme, status=S.QUEUED).count() == 2
    page = alice_client.get(f"/jobs/?{query}").content.decode()
    assert "data-job-id=" not in page and 'id="bulk-matching"' not in page


def test_a_handler_no_longer_deployed_is_a_filter_of_its_own_jobs(alice_client, acme):
    gone = failed_jobs(acme, 2, handler="old.removed")
    failed_jobs(acme, 3)

    page = alice_client.get("/jobs/?handler=old.removed").content.decode()
    assert page.count("data-job-id=") == 2
    assert '<option value="old.removed" selected>old.removed (not deployed)</option>' in page

    result = post_batch(alice_client, "handler=old.removed", "delete").json()
    assert result == {"processed": 2, "done": 2, "refused": 0, "cursor": None}
    assert not Job.objects.filter(pk__in=[j.pk for j in gone]).exists()
    assert Job.objects.filter(team=acme, handler="pulse.fail").count() == 3


def test_a_bulk_action_stops_at_the_next_batch_once_its_runner_is_demoted_and_says_why(bob_client, acme, bob):
    from pulse_site.teams.models import Membership
    from pulse_site.teams.services import membership_set_role

    failed_jobs(acme, 250)
    first = post_batch(bob_client, "status=failed", "retry").json()
    assert first["done"] == 200
    membership_set_role(membership=Membership.objects.get(team=acme, user=bob), role="viewer", by=None)
    second = post_batch(bob_client, "status=failed", "retry", cursor=first["cursor"])
    assert second.status_code == 403
    assert second.json() == {"errors": ["Viewers can look but not change anything."]}
    assert Job.objects.filter(team=acme, status=S.FAILED).count() == 50


def test_a_bulk_action_stops_at_the_next_batch_once_its_runner_is_removed_or_signed_out(bob_client, acme, bob):
    from pulse_site.teams.models import Membership
    from pulse_site.teams.services import membership_remove

    failed_jobs(acme, 250)
    first = post_batch(bob_client, "status=failed", "retry").json()
    membership_remove(membership=Membership.objects.get(team=acme, user=bob), by=None)
    second = post_batch(bob_client, "status=failed", "retry", cursor=first["cursor"])
    assert second.status_code == 403
    assert second.json() == {"errors": ["You are no longer in a team."]}
    bob_client.logout()
    third = post_batch(bob_client, "status=failed", "retry", cursor=first["cursor"])
    assert third.status_code == 401
    assert third.json() == {"errors": ["You are signed out: sign in again, then load the page."]}
    assert Job.objects.filter(team=acme, status=S.FAILED).count() == 50
