"""A cluster killed with jobs handed over to it: the jobs it had pulled from the broker (django-q2
prefetches up to queue_limit per cluster) are lost with it, and go back to the backlog as soon as
the cluster stops reporting, not after PULSE_REDISPATCH_SECONDS (120 s, the backstop)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.core.cache import cache

from jobs.handover import _record_key, live_clusters
from jobs.models import Attempt, Job
from jobs.services import job_submit
from tests.fault.conftest import finished_runs, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]
Status = Job.Status
# django-q2 keeps a cluster's status 3 s after its last save; the handover step runs every second.
STATUS_EXPIRY, HANDOVER_EVERY = 3.0, 1.0
# A ticker process's start (Python, Django, its first round), with room for a loaded machine.
TICKER_START_UP = 6.0


@pytest.mark.parametrize("seen", [True, False], ids=["seen-by-the-ticker", "dead-before-any-ticker-looked"])
def test_jobs_a_killed_cluster_had_taken_are_handed_over_again_within_seconds(acme, processes, settings, seen):
    """`seen`: the ticker ran beside the cluster. Otherwise the ticker had recorded no cluster alive
    and was down (or too slow to look) for the cluster's whole life: only the beats its workers
    wrote tell that it was ever there."""
    if settings.PULSE_BROKER != "redis":
        pytest.skip("the ORM broker keeps a message until it is acknowledged; Redis loses a killed cluster's")
    processes.env["PULSE_REDISPATCH_SECONDS"] = "120"  # the backstop, far beyond what this test waits
    ticker = processes.start("pulse_ticker")
    if not seen:
        wait_for(lambda: cache.get(_record_key()) == {"alive": [], "mourned": []}, what="the ticker's record")
        processes.kill(ticker)
    cluster = processes.start("qcluster")
    jobs = [job_submit(team=acme, handler="fault.work", payload={"steps": 4, "seconds": 0.25}, source="api").job
            for _ in range(24)]
    pks = [j.pk for j in jobs]

    def handed_over() -> set[int]:
        return set(Job.objects.filter(pk__in=pks, status=Status.QUEUED, dispatched_at__isnull=False)
                   .values_list("pk", flat=True))

    # Four running and the rest of the capacity (eight) handed over: pulled by the cluster or in Redis.
    wait_for(lambda: Job.objects.filter(pk__in=pks, status=Status.RUNNING).count() == 4
             and len(handed_over()) >= 3, timeout=60, what="4 running and jobs handed over")
    lost = handed_over()
    killed_cluster = live_clusters()
    processes.kill(cluster)
    killed_at, killed = datetime.now(UTC), time.monotonic()
    processes.start("qcluster")
    if not seen:
        # The ticker comes back after the cluster's status expired: nothing in the broker says it lived.
        wait_for(lambda: not killed_cluster & live_clusters(), timeout=STATUS_EXPIRY + 5,
                 what="the killed cluster's status gone")
        processes.start("pulse_ticker")

    def handed_over_again() -> bool:
        rows = Job.objects.filter(pk__in=lost).values_list("status", "dispatched_at", "started_at")
        return all(status != Status.QUEUED or (dispatched and dispatched > killed_at) or started
                   for status, dispatched, started in rows)

    wait_for(handed_over_again, timeout=60, what="the killed cluster's jobs handed over again", every=0.05)
    again_after = time.monotonic() - killed
    # Unseen, the new ticker's start-up comes on top of the status's expiry.
    bound = STATUS_EXPIRY + HANDOVER_EVERY + 2.0 + (0 if seen else TICKER_START_UP)
    wait_for(lambda: Job.objects.filter(pk__in=lost, attempts__gte=1).count() == len(lost), timeout=60,
             what="the killed cluster's jobs started")
    started_after = time.monotonic() - killed
    wait_for(lambda: Job.objects.filter(pk__in=pks, status=Status.COMPLETED).count() == len(pks), timeout=120,
             what="all completed")
    drained_after = time.monotonic() - killed
    print(f"\ncluster SIGKILL with {len(lost)} jobs handed over and not started: handed over again "
          f"{again_after:.1f} s after the kill (bound {bound:.0f} s), started "
          f"{started_after:.1f} s after (a new cluster's start-up included), all {len(pks)} completed after "
          f"{drained_after:.1f} s (PULSE_REDISPATCH_SECONDS=120)")
    assert again_after <= bound
    assert set(finished_runs()) == set(pks)
    assert Attempt.objects.filter(job__in=pks, outcome="completed").count() == len(pks)
