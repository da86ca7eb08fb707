"""The dispatcher's choice (jobs.dispatch): each free slot goes to the team with the fewest jobs
in flight, ties to the team waiting longest, and within a team by priority then age; it reads
only the heads of the teams that can get a slot, however many teams have a backlog."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import dispatch as dispatch_module
from jobs.dispatch import dispatch
from jobs.models import Job
from jobs.services import job_submit
from pulse_site.teams.services import team_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def nothing_handed_over(settings):
    settings.PULSE_DISPATCH_CAPACITY = 0  # submits hand nothing over: the test dispatches itself
    return settings


def backlog(team, count: int, **options) -> list[Job]:
    return [job_submit(team=team, handler="pulse.noop", payload={}, source="api", **options).job
            for _ in range(count)]


def handed_over() -> list[str]:
    return list(Job.objects.filter(dispatched_at__isnull=False, status=Job.Status.QUEUED)
                .order_by("id").values_list("public_id", flat=True))


def test_slots_go_to_the_teams_with_fewest_in_flight_then_the_longest_waiting(nothing_handed_over, acme, globex):
    umbrella = team_create(name="Umbrella", slug="umbrella")
    a = backlog(acme, 5)
    g = backlog(globex, 3)
    u = backlog(umbrella, 1)
    # Acme has two jobs in flight already.
    Job.objects.filter(pk__in=[a[0].pk, a[1].pk]).update(dispatched_at=timezone.now())
    nothing_handed_over.PULSE_DISPATCH_CAPACITY = 2 + 4
    assert dispatch() == 4
    # Globex and Umbrella (0 in flight) first, Globex waiting longer; then Globex again (1) before
    # Acme (2) and Umbrella (no more jobs); then Acme or Globex at 2 each, Acme waiting longest.
    assert handed_over() == [a[0].public_id, a[1].public_id, a[2].public_id, g[0].public_id, g[1].public_id,
                             u[0].public_id]


def test_within_a_team_priority_comes_before_age(nothing_handed_over, acme):
    low = backlog(acme, 2)
    urgent = backlog(acme, 1, priority=5)
    nothing_handed_over.PULSE_DISPATCH_CAPACITY = 2
    dispatch()
    assert handed_over() == [low[0].public_id, urgent[0].public_id]


def test_one_free_slot_among_fifty_teams_with_a_backlog_reads_one_teams_head(nothing_handed_over, alice):
    teams = [team_create(name=f"Team {n:02d}", slug=f"team-{n:02d}") for n in range(50)]
    firsts = [backlog(team, 2)[0] for team in teams]
    nothing_handed_over.PULSE_DISPATCH_CAPACITY = 1
    with CaptureQueriesContext(connection) as queries:
        assert dispatch() == 1
    assert handed_over() == [firsts[0].public_id]  # the team waiting longest
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and '"jobs_job"' in q["sql"]]
    # Whether anything waits, in flight per team, the oldest ready job per team, the chosen team's
    # head: not one per team.
    assert len(reads) == 4, reads


def test_a_job_handed_over_reaches_the_queue_the_clusters_read_now(acme, monkeypatch):
    """The process keeps one broker, and a broker is made for one queue: once the queue's name
    changes (each test's clusters read a queue of their own), the jobs go to the new one, not to
    where no cluster reads (a job lost that way waited PULSE_REDISPATCH_SECONDS)."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    queues = []
    for _ in range(2):
        name = f"pulse-test-{uuid.uuid4().hex[:8]}"
        monkeypatch.setattr(Conf, "PREFIX", name, raising=False)
        monkeypatch.setattr(Conf, "CLUSTER_NAME", name, raising=False)
        queues.append(get_broker())
        job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
        assert job.dispatched_at is not None
        Job.objects.filter(pk=job.pk).update(status=Job.Status.COMPLETED)  # out of flight
    try:
        assert [queue.queue_size() for queue in queues] == [1, 1]
    finally:
        for queue in queues:
            queue.purge_queue()


def test_the_dispatch_step_wakes_at_a_start_time_before_the_next_tick(acme, time_machine, monkeypatch):
    """A retry's backoff or a run_after that ends between two ticks is handed over when it ends,
    not up to a second later; one further off waits for its tick."""
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from jobs import steps

    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time_machine.shift(timedelta(seconds=seconds))

    monkeypatch.setattr(steps, "time", SimpleNamespace(sleep=sleep))
    now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    time_machine.move_to(now, tick=False)
    soon = backlog(acme, 1, run_after=now + timedelta(seconds=0.4))[0]
    later = backlog(acme, 1, run_after=now + timedelta(seconds=5))[0]
    steps.dispatch_due()
    assert slept == [pytest.approx(0.4)]
    assert Job.objects.get(pk=soon.pk).dispatched_at == now + timedelta(seconds=0.4)
    assert Job.objects.get(pk=later.pk).dispatched_at is None
    steps.dispatch_due()
    assert slept == [pytest.approx(0.4)]  # nothing due before the next tick: no wait


def test_a_backlogged_job_says_how_many_of_its_teams_jobs_go_first_in_the_dispatchers_order(
        nothing_handed_over, acme, globex, acme_api, alice_client, monkeypatch):
    from datetime import timedelta

    from jobs import selectors
    from jobs.selectors import job_waiting

    low = backlog(acme, 3)
    urgent = backlog(acme, 1, priority=5)
    later = backlog(acme, 1, run_after=timezone.now() + timedelta(hours=1))[0]
    backlog(globex, 4)  # another team's backlog shares the workers, not this count
    waiting = job_waiting(low[2])
    assert (waiting.ahead, waiting.ahead_capped, waiting.handed_over_at) == (3, False, None)
    assert job_waiting(urgent[0]).ahead == 0
    assert job_waiting(later) is None  # due later: the page says when instead
    body = acme_api.get(f"/api/v1/jobs/{low[2].public_id}/").json()
    assert body["waiting"] == {"ahead": 3, "ahead_capped": False, "handed_over_at": None}
    page = alice_client.get(f"/jobs/{low[2].public_id}/").content.decode()
    assert "In the backlog: 3 of the team's jobs go first" in page
    assert "Next in the team's backlog" in alice_client.get(f"/jobs/{urgent[0].public_id}/").content.decode()
    monkeypatch.setattr(selectors, "AHEAD_CAP", 2)
    assert (job_waiting(low[2]).ahead, job_waiting(low[2]).ahead_capped) == (2, True)
    monkeypatch.undo()

    # The count is the dispatcher's order: the 3 ahead go first, then this one.
    Job.objects.filter(team=globex).update(status=Job.Status.CANCELLED)
    nothing_handed_over.PULSE_DISPATCH_CAPACITY = 3
    dispatch()
    low[2].refresh_from_db()
    assert low[2].dispatched_at is None and job_waiting(low[2]).ahead == 0
    nothing_handed_over.PULSE_DISPATCH_CAPACITY = 4
    dispatch()
    low[2].refresh_from_db()
    assert job_waiting(low[2]).handed_over_at == low[2].dispatched_at is not None
    assert acme_api.get(f"/api/v1/jobs/{low[2].public_id}/").json()["waiting"]["ahead"] is None
    assert "Handed to the workers" in alice_client.get(f"/jobs/{low[2].public_id}/").content.decode()
    assert acme_api.get(f"/api/v1/jobs/{Job.objects.filter(team=globex).first().public_id}/").status_code == 404


def test_the_capacity_counts_the_live_workers_of_every_cluster(settings, acme):
    """Three clusters of 2 workers ran at most 4 jobs at once (the capacity was one cluster's,
    2 x PULSE_WORKERS) while the other 2 workers sat idle."""
    from datetime import timedelta

    from jobs.dispatch import dispatch_capacity
    from jobs.models import WorkerBeat

    settings.PULSE_DISPATCH_CAPACITY, settings.PULSE_WORKERS = None, 2
    assert dispatch_capacity() == 4  # no worker has beaten yet: one cluster's
    dispatch_module._capacity.clear()  # (each process reads the beats again after 5 s)
    now = timezone.now()
    for cluster in ("m1:10", "m2:20", "m3:30"):
        for n in (1, 2):
            WorkerBeat.objects.create(name=f"{cluster}/{n}", cluster=cluster, seen_at=now)
    WorkerBeat.objects.create(name="gone/1", cluster="gone", seen_at=now - timedelta(minutes=5))
    jobs = [job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job for _ in range(15)]
    assert dispatch() + sum(1 for j in jobs if j.dispatched_at) == 12  # 6 live workers; the gone one not counted
    settings.PULSE_DISPATCH_CAPACITY = 5  # set by the operator: kept as set
    assert dispatch_capacity() == 5
