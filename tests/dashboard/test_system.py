"""The staff system page (every team's executor, workers, operators' pauses) and the overview's executor panel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.models import Job, JobStat, QueuePause, WorkerBeat
from jobs.pausing import queue_pause
from tests.conftest import logged_in, make_user

T0 = datetime(2026, 3, 10, 12, 30, 0, tzinfo=UTC)
S = Job.Status


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
def ops(db):
    return make_user("ops", is_staff=True)


@pytest.fixture
def world(acme, globex, time_machine):
    time_machine.move_to(T0, tick=False)
    Job.objects.create(team=acme, handler="pulse.noop", status=S.RUNNING, worker="host:11")
    for _ in range(3):
        Job.objects.create(team=acme, handler="pulse.noop", status=S.QUEUED)
    Job.objects.create(team=globex, handler="pulse.noop", status=S.PAUSED)
    JobStat.objects.create(team=acme, handler="pulse.noop", hour=T0.replace(minute=0), completed=9, failed=1,
                           run_ms=2_500)
    JobStat.objects.create(team=globex, handler="globex.secret", hour=T0.replace(minute=0), completed=777)
    WorkerBeat.objects.create(name="host:11", cluster="host:10", cluster_started_at=T0 - timedelta(hours=3),
                              started_at=T0 - timedelta(minutes=20), seen_at=T0 - timedelta(seconds=4),
                              rss_bytes=80 * 2**20)
    WorkerBeat.objects.create(name="host:12", cluster="host:10", cluster_started_at=T0 - timedelta(hours=3),
                              started_at=T0 - timedelta(hours=1), seen_at=T0 - timedelta(minutes=5), rss_bytes=1)
    queue_pause(scope=QueuePause.Scope.HANDLER, handler="http.request", reason="vendor outage", by="ops")
    queue_pause(scope=QueuePause.Scope.TEAM, team=globex, reason="globex migration", by="charlie")


def section(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start:page.index("</section>", start)]


def test_staff_see_every_teams_row_the_workers_and_the_operators_pauses(ops, acme, globex, world):
    page = logged_in(ops).get("/system/").content.decode()
    teams = section(page, "system-teams")
    acme_row = teams[teams.index(f'id="team-{acme.public_id}"'):teams.index(f'id="team-{globex.public_id}"')]
    assert ('<td data-label="Running" class="num">1</td><td data-label="Queued" class="num">3</td>'
            '<td data-label="Held" class="num">0</td>') in acme_row
    assert ('<td data-label="Processed" class="num">10</td><td data-label="Failed" class="num">1</td>' in acme_row
            and "90.0 %" in acme_row and "250 ms" in acme_row)
    globex_row = teams[teams.index(f'id="team-{globex.public_id}"'):]
    assert ">paused<" in globex_row and "charlie: globex migration" in globex_row
    workers = section(page, "system-workers")
    alive = workers[workers.index('data-worker="host:11"'):workers.index('data-worker="host:12"')]
    assert "alive" in alive and "80.0 MiB" in alive and "20\xa0minutes" in alive
    assert Job.objects.get(status=S.RUNNING).public_id in alive and acme.name in alive
    assert "gone" in workers[workers.index('data-worker="host:12"'):]
    pauses = section(page, "system-pauses")
    assert "http.request" in pauses and "vendor outage" in pauses and "globex migration" not in pauses
    assert 'id="system-busy">1/1<' in page  # one live worker, busy


def test_the_status_fragment_is_what_the_page_refreshes_with(ops, acme, world):
    fragment = logged_in(ops).get("/system/status/").content.decode()
    assert fragment.startswith('<div id="system-status"') and f'id="team-{acme.public_id}"' in fragment


@pytest.mark.parametrize("path", ["/system/", "/system/status/"])
def test_a_team_owner_who_is_not_staff_gets_404(alice_client, charlie_client, world, path):
    for client in (alice_client, charlie_client):
        response = client.get(path)
        assert response.status_code == 404 and b"globex.secret" not in response.content


def test_an_anonymous_visitor_is_sent_to_log_in(client, db):
    response = client.get("/system/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_system_link_is_in_the_header_for_staff_only(ops, alice_client, acme):
    assert 'id="nav-system"' in logged_in(ops).get("/system/").content.decode()
    assert 'id="nav-system"' not in alice_client.get("/").content.decode()


# --- The overview's panel --------------------------------------------------------------------


def test_the_overview_panel_shows_the_teams_own_executor_and_refreshes_with_the_live_fragment(alice_client, world):
    for path in ("/", "/overview/pulse/"):
        panel = section(alice_client.get(path).content.decode(), "executor")
        assert 'id="executor-state">running<' in panel
        assert 'id="executor-active">1<' in panel
        assert 'id="executor-backlog">3 ' in panel
        assert 'id="executor-processed">10 ' in panel and "90.0 %" in panel and "250 ms" in panel
        assert 'id="executor-workers">1 of 1 ' in panel and "3\xa0hours" in panel
        assert "http.request</code> paused everywhere by ops: vendor outage" in panel
        assert "777" not in panel and "globex migration" not in panel


def test_a_paused_team_sees_paused_on_its_panel(charlie_client, world):
    panel = section(charlie_client.get("/overview/pulse/").content.decode(), "executor")
    assert 'id="executor-state">paused<' in panel and "Paused by charlie: globex migration" in panel
    assert 'id="executor-processed">777 ' in panel and 'id="executor-active">0<' in panel


def test_a_gone_worker_and_its_gone_cluster_were_up_until_their_last_beat(ops, acme, time_machine):
    """A cluster killed 6 minutes ago still read 'up 9 minutes' on its workers' rows (growing on
    every refresh until the ticker forgot them): a gone worker was up until its last beat, and a
    cluster none of whose workers beats any more until the last of them did."""
    time_machine.move_to(T0, tick=False)
    # A cluster killed 6 minutes ago, 3 minutes after it started.
    WorkerBeat.objects.create(name="dead:21", cluster="dead:20", cluster_started_at=T0 - timedelta(minutes=9),
                              started_at=T0 - timedelta(minutes=8), seen_at=T0 - timedelta(minutes=6), rss_bytes=1)
    # A worker recycled 5 minutes ago in a cluster that is still up (its sibling beats).
    WorkerBeat.objects.create(name="live:11", cluster="live:10", cluster_started_at=T0 - timedelta(hours=3),
                              started_at=T0 - timedelta(minutes=20), seen_at=T0 - timedelta(seconds=4), rss_bytes=1)
    WorkerBeat.objects.create(name="live:12", cluster="live:10", cluster_started_at=T0 - timedelta(hours=3),
                              started_at=T0 - timedelta(hours=1), seen_at=T0 - timedelta(minutes=5), rss_bytes=1)
    workers = section(logged_in(ops).get("/system/").content.decode(), "system-workers")

    def row(name: str) -> str:
        start = workers.index(f'data-worker="{name}"')
        return workers[start:workers.index("</tr>", start)]

    dead = row("dead:21")
    assert "gone" in dead and "up 3\xa0minutes" in dead and '<td data-label="Up">2\xa0minutes</td>' in dead, dead
    recycled = row("live:12")
    assert "gone" in recycled and "up 3\xa0hours" in recycled, recycled
    assert '<td data-label="Up">55\xa0minutes</td>' in recycled, recycled
    assert "up 3\xa0hours" in row("live:11") and '<td data-label="Up">20\xa0minutes</td>' in row("live:11")
