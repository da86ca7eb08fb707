"""The activity history: every event of the team, newest first, filtered and paged, on a page and
in the API; never another team's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pulse_site import paging
from pulse_site.live.models import Event

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def events(team, kinds: list[str], subject: str = "JB_01TEST0000000000000000000") -> list[Event]:
    return Event.objects.bulk_create([
        Event(team=team, kind=kind, subject=subject, created_at=T0 + timedelta(seconds=i),
              payload={"handler": "pulse.noop", "message": f"event {i}"})
        for i, kind in enumerate(kinds)
    ])


def ids_on(html: str, rows: list[Event]) -> list[int]:
    """The ids of `rows` in the order the page shows them."""
    found = [(html.find(f'data-event-id="{e.id}"'), e.id) for e in rows]
    return [i for at, i in sorted(found) if at >= 0]


def test_the_page_shows_the_teams_events_newest_first_without_progress_unless_asked(alice_client, acme, globex):
    mine = events(acme, ["job.created", "job.progress", "job.log", "job.completed"])
    theirs = events(globex, ["job.created", "job.failed"])

    page = alice_client.get("/activity/")
    everything = alice_client.get("/activity/?all=on")

    assert page.status_code == 200
    html = page.content.decode()
    assert ids_on(html, mine) == [mine[3].id, mine[0].id]
    assert ids_on(html, theirs) == []
    assert ids_on(everything.content.decode(), mine) == [e.id for e in reversed(mine)]
    assert "pulse.noop completed" in html  # the events' words, as on the overview


def test_the_page_filters_by_family_and_subject(alice_client, acme):
    job = events(acme, ["job.created", "job.cancelled"], subject="JB_01AAAAAAAAAAAAAAAAAAAAAAAA")
    other = events(acme, ["job.created"], subject="JB_01BBBBBBBBBBBBBBBBBBBBBBBB")
    budget = events(acme, ["budget.alert"], subject="TM_01AAAAAAAAAAAAAAAAAAAAAAAA")

    by_family = alice_client.get("/activity/?family=budget").content.decode()
    by_subject = alice_client.get("/activity/?subject=JB_01AAAAAAAAAAAAAAAAAAAAAAAA").content.decode()

    assert ids_on(by_family, job + other + budget) == [budget[0].id]
    assert ids_on(by_subject, job + other + budget) == [job[1].id, job[0].id]


def test_the_page_goes_back_page_by_page(alice_client, acme):
    rows = events(acme, ["job.created"] * 120)

    first = alice_client.get("/activity/")
    second = alice_client.get(first.context["next_url"])
    third = alice_client.get(second.context["next_url"])

    shown = [ids_on(r.content.decode(), rows) for r in (first, second, third)]
    assert [len(s) for s in shown] == [50, 50, 20]
    assert sum(shown, []) == [e.id for e in reversed(rows)]
    assert third.context["next_url"] is None


@pytest.mark.parametrize(("query", "field"), [
    ("family=jobz", "family"), ("cursor=abc", "cursor"), ("cursor=-5", "cursor"), ("subject=" + "x" * 65, "subject"),
])
def test_a_bad_filter_is_a_400_naming_the_field(alice_client, acme, query, field):
    events(acme, ["job.created"])
    response = alice_client.get(f"/activity/?{query}")
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not response.context["rows"]
    assert "Fix the filter above to see events." in response.content.decode()


def test_a_sparse_filter_looks_through_a_bounded_window_per_page_and_carries_on(alice_client, acme, monkeypatch):
    monkeypatch.setattr(paging, "SCAN_WINDOW", 3)
    monkeypatch.setattr(paging, "SCAN_BUDGET", 6)
    rows = events(acme, ["execution.fired"] + ["job.created"] * 20 + ["execution.fired"])

    pages, url = [], "/activity/?family=execution"
    while url and len(pages) < 20:
        response = alice_client.get(url)
        url = response.context["next_url"]
        pages.append((response.content.decode(), url))

    # Both alerts, newest first, over pages that each looked through six events at most: those
    # between them found nothing and said so, and the walk ended.
    assert sum((ids_on(page, rows) for page, _ in pages), []) == [rows[-1].id, rows[0].id]
    assert len(pages) >= 4 and url is None
    empty = [page for page, more in pages if more and not ids_on(page, rows)]
    assert empty and all("None among the events looked through; older ones may match." in page for page in empty)


@pytest.mark.parametrize("query", ["family=budget", "subject=TM_01TEAM00000000000000000000"])
def test_the_rare_families_and_subjects_are_found_however_far_back(alice_client, acme, monkeypatch, query):
    monkeypatch.setattr(paging, "SCAN_WINDOW", 3)
    monkeypatch.setattr(paging, "SCAN_BUDGET", 6)
    alerts = events(acme, ["budget.alert"] * 2, subject="TM_01TEAM00000000000000000000")
    events(acme, ["job.created", "job.progress", "execution.fired"] * 20)

    page = alice_client.get(f"/activity/?{query}")

    # Through their own index: one page, however many of the jobs' events came after them.
    assert ids_on(page.content.decode(), alerts) == [alerts[1].id, alerts[0].id]
    assert page.context["next_url"] is None


def test_a_rare_family_pages_by_its_own_ids(acme, acme_api):
    alerts = events(acme, ["budget.alert"] * 5)
    events(acme, ["job.created"] * 5)

    first = acme_api.get("/api/v1/events/?family=budget&limit=2").json()
    second = acme_api.get(f"/api/v1/events/?family=budget&limit=2&cursor={first['next_cursor']}").json()
    third = acme_api.get(f"/api/v1/events/?family=budget&limit=2&cursor={second['next_cursor']}").json()

    assert [[e["id"] for e in page["results"]] for page in (first, second, third)] == [
        [alerts[4].id, alerts[3].id], [alerts[2].id, alerts[1].id], [alerts[0].id]]
    assert third["next_cursor"] is None


def test_a_jobs_events_are_read_within_its_lifetime_not_back_from_the_newest(alice_client, acme, monkeypatch):
    from jobs.models import Job

    monkeypatch.setattr(paging, "SCAN_WINDOW", 3)
    monkeypatch.setattr(paging, "SCAN_BUDGET", 6)
    job = Job.objects.create(team=acme, handler="pulse.noop", status=Job.Status.COMPLETED, created_at=T0,
                             completed_at=T0 + timedelta(seconds=10))
    Event.objects.bulk_create([Event(team=acme, kind="job.created", subject="JB_01OLDER0000000000000000000",
                                     created_at=T0 - timedelta(hours=1))])
    own = events(acme, ["job.created", "job.started", "job.completed"], subject=job.public_id)
    Event.objects.bulk_create([Event(team=acme, kind="job.created", subject="JB_01LATER0000000000000000000",
                                     created_at=T0 + timedelta(hours=1, seconds=i)) for i in range(30)])

    page = alice_client.get(f"/activity/?subject={job.public_id}")

    # Thirty newer events would have taken five cut-short pages to get past; the job's own come first.
    assert ids_on(page.content.decode(), own) == [e.id for e in reversed(own)]
    assert page.context["next_url"] is None


def test_viewers_read_it_and_the_overview_job_and_schedule_pages_link_to_it(vic_client, acme):
    from jobs.services import job_submit
    from schedules.services import schedule_create

    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    schedule = schedule_create(team=acme, name="Nightly", handler="pulse.noop", cron="0 3 * * *")

    assert vic_client.get("/activity/").status_code == 200
    assert 'href="/activity/"' in vic_client.get("/").content.decode()
    assert f'href="/activity/?subject={job.public_id}"' in vic_client.get(f"/jobs/{job.public_id}/").content.decode()
    schedule_page = vic_client.get(f"/schedules/{schedule.public_id}/").content.decode()
    assert f'href="/activity/?subject={schedule.public_id}"' in schedule_page
    team_page = vic_client.get("/team/").content.decode()
    assert 'href="/activity/?family=member"' in team_page  # (the tokens' section, with its link, is the managers')
    assert 'href="/activity/?family=notification"' in vic_client.get("/notifications/").content.decode()
    history = vic_client.get(f"/activity/?subject={job.public_id}").content.decode()
    assert ids_on(history, list(Event.objects.filter(subject=job.public_id))) != []


# --- API ----------------------------------------------------------------------------------------


def test_the_api_lists_the_teams_events_with_their_words_and_pages(acme, globex, acme_api):
    mine = events(acme, ["job.created", "job.progress", "job.failed"])
    events(globex, ["job.created"])

    first = acme_api.get("/api/v1/events/?limit=1").json()
    second = acme_api.get(f"/api/v1/events/?limit=1&cursor={first['next_cursor']}").json()
    everything = acme_api.get("/api/v1/events/?all=true").json()

    assert [e["id"] for e in first["results"]] == [mine[2].id]
    assert first["results"][0] == {"id": mine[2].id, "kind": "job.failed", "subject": mine[2].subject,
                                   "at": mine[2].created_at.isoformat().replace("+00:00", "Z"),
                                   "payload": mine[2].payload, "text": "pulse.noop failed"}
    assert [e["id"] for e in second["results"]] == [mine[0].id]
    assert second["next_cursor"] == mine[0].id  # below it, the team's creation and its members
    assert [e["id"] for e in everything["results"]][:3] == [e.id for e in reversed(mine)]
    assert {e["kind"] for e in everything["results"][3:]} <= {"team.created", "member.added", "token.created"}


def test_the_api_filters_and_never_shows_another_teams_events(acme, globex, acme_api, globex_api):
    job = events(acme, ["job.created", "job.cancelled"], subject="JB_01AAAAAAAAAAAAAAAAAAAAAAAA")
    events(acme, ["schedule.created"], subject="SP_01AAAAAAAAAAAAAAAAAAAAAAAA")

    by_subject = acme_api.get("/api/v1/events/?subject=JB_01AAAAAAAAAAAAAAAAAAAAAAAA").json()
    by_family = acme_api.get("/api/v1/events/?family=schedule").json()
    theirs = globex_api.get("/api/v1/events/?subject=JB_01AAAAAAAAAAAAAAAAAAAAAAAA").json()

    assert [e["id"] for e in by_subject["results"]] == [job[1].id, job[0].id]
    assert [e["kind"] for e in by_family["results"]] == ["schedule.created"]
    assert theirs == {"results": [], "next_cursor": None}


@pytest.mark.parametrize(("query", "field"), [
    ("family=jobz", "family"), ("cursor=abc", "cursor"), ("cursor=0", "cursor"), ("limit=0", "limit"),
    ("all=maybe", "all"), ("kind=job.failed", "kind"),
])
def test_a_bad_api_query_is_a_400_naming_the_parameter(acme_api, query, field):
    response = acme_api.get(f"/api/v1/events/?{query}")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
