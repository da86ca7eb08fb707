"""Jobs handed to django-q2 whose messages may be gone are handed over again at once.

A job handed over (queued, `dispatched_at` set, not started) counts against the dispatch capacity
while its message is in the broker or in a cluster's hands: each cluster pulls up to `queue_limit`
messages ahead of its workers. The message is gone, and the job with it until re-dispatched, when:

- the cluster that pulled it dies (SIGKILL, a lost machine): its prefetched messages die with it;
- Redis restarts without persistence: the queue list is gone;
- the database is unreachable: workers consume messages whose claims fail.

Waiting PULSE_REDISPATCH_SECONDS for each such job stalls the whole backlog that long (measured:
124 s for 40 half-second jobs after a SIGKILL). Instead, the handover is tied to what can be seen:
every cluster saves its django-q2 status in the broker twice a second with a 3 s expiry, and the
ticker keeps, in the cache (the same Redis), the set of clusters it saw alive. When a cluster of
that set is gone, when the record itself is gone (Redis lost its data, or no ticker ran before),
or when a ticker reaches the database again after an outage, every job handed over before that
moment and not started goes back to the backlog and is dispatched again.

A cluster can also die before any ticker looked (killed in its first seconds, or while the
tickers were down or slow): it was never in the set. Its workers wrote their beats (jobs.beats)
when spawned, so the clusters with beats are known too: one that is not alive and not yet
mourned is gone the same way. Alive means reporting its status; where the status cannot be seen
(a cache local to each process, the embedded default), it means its workers still beat.

A message that was not lost after all (it sat in Redis, or with a live cluster) is then delivered
twice; the claim makes the second delivery a no-op. PULSE_REDISPATCH_SECONDS stays the backstop for
a loss none of these signals shows.
"""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.utils import timezone

from jobs.models import Job

log = logging.getLogger("pulse.jobs")
Status = Job.Status


def _queue_prefix() -> str:
    from django_q.conf import Conf

    return str(Conf.PREFIX)


def _record_key() -> str:
    return f"pulse:handover:{_queue_prefix()}"


def live_clusters() -> set[str]:
    """The django-q2 clusters of this queue that saved their status in the last 3 s, each named as
    its workers' beats name it: host:pid of its sentinel."""
    from django_q.status import Stat

    from jobs.dispatch import process_broker

    return {f"{stat.host}:{stat.sentinel}" for stat in Stat.get_all(broker=process_broker())}


def _statuses_seen_here() -> bool:
    """Whether this process sees the clusters' statuses. django-q2 keeps them in Redis with the
    Redis broker and in Django's cache with the ORM broker: unseen only with a cache local to each
    process (the embedded default; the Redis broker requires REDIS_URL, which makes the cache Redis)."""
    from django.core.cache.backends.locmem import LocMemCache

    return not isinstance(cache, LocMemCache)


def _clusters_with_beats(alive: set[str]) -> tuple[set[str], set[str]]:
    """The clusters whose workers wrote a beat, and those of them gone (see the module's note)."""
    from django.db.models import Max

    from jobs.beats import live_after
    from jobs.models import WorkerBeat

    last_beats = dict(WorkerBeat.objects.exclude(cluster="").values("cluster")
                      .annotate(last=Max("seen_at")).values_list("cluster", "last"))
    if _statuses_seen_here():
        gone = set(last_beats) - alive
    else:
        since = live_after()
        gone = {name for name, last in last_beats.items() if last < since}
    return set(last_beats), gone


def handover_reset(*, reason: str) -> int:
    """Every job handed over and not started goes back to the backlog; returns how many."""
    returned = Job.objects.filter(status=Status.QUEUED, dispatched_at__isnull=False,
                                  dispatched_at__lte=timezone.now()).update(dispatched_at=None)
    if returned:
        log.warning("%s: %d handed-over jobs go back to the backlog", reason, returned)
    return returned


def handover_check() -> int:
    """The ticker step: compare the clusters alive now with those known before (seen alive, or
    with beats and not mourned yet); hand over again what a vanished cluster (or a lost broker) may
    have taken with it. Returns jobs returned."""
    alive = live_clusters()
    with_beats, gone_by_beats = _clusters_with_beats(alive)
    record = cache.get(_record_key())
    returned = 0
    if not isinstance(record, dict):
        returned = handover_reset(reason="no record of the clusters alive before (broker data lost, or first ticker)")
        gone = gone_by_beats  # all mourned at once by this reset
        mourned: set[str] = set()
    else:
        mourned = set(record["mourned"])
        gone = (set(record["alive"]) - alive) | (gone_by_beats - mourned)
        if gone:
            returned = handover_reset(reason=f"cluster(s) {', '.join(sorted(gone))} stopped reporting")
    # A mourned cluster is forgotten with its last beat row (pruned after jobs.beats.PRUNE_AFTER).
    now = {"alive": sorted(alive), "mourned": sorted((mourned | gone) & with_beats)}
    if record != now:
        cache.set(_record_key(), now, timeout=None)
    if returned:
        from jobs.dispatch import dispatch

        dispatch()
    return returned


def handover_after_outage() -> None:
    """On the database's return: claims that failed during the outage consumed their messages."""
    if handover_reset(reason="database back after an outage"):
        from jobs.dispatch import dispatch

        dispatch()
