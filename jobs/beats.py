"""Worker beats: every django-q2 worker process keeps a WorkerBeat row current.

django-q2's own cluster stats live in the broker's cache, which the web process of the embedded
default (local-memory cache) cannot see; a row in the database is visible to every process on
every machine. A worker writes its row when it is spawned and then every
PULSE_WORKER_BEAT_SECONDS from a daemon thread; a row not seen for BEAT_MISSES beats is a worker
that is gone (killed, recycled, its machine down), and the ticker deletes it after PRUNE_AFTER.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from jobs.models import WorkerBeat

log = logging.getLogger("pulse.jobs")

# A worker is alive while its last beat is younger than this many beat intervals.
BEAT_MISSES = 3
PRUNE_AFTER = timedelta(minutes=10)


def live_after(now: datetime | None = None) -> datetime:
    """Beats at or after this moment are live workers."""
    return (now or timezone.now()) - timedelta(seconds=settings.PULSE_WORKER_BEAT_SECONDS * BEAT_MISSES)


def _cluster() -> tuple[str, datetime | None]:
    # A worker's parent is its cluster's sentinel; its start time is the cluster's start.
    import psutil

    parent = os.getppid()
    try:
        started = datetime.fromtimestamp(psutil.Process(parent).create_time(), tz=dt_timezone.utc)
    except (psutil.Error, OSError):
        started = None
    return f"{socket.gethostname()}:{parent}", started


def _rss() -> int:
    import psutil

    try:
        return int(psutil.Process().memory_info().rss)
    except (psutil.Error, OSError):
        return 0


def beat(*, name: str, cluster: str, cluster_started_at: datetime | None, spawned: bool = False) -> None:
    """Write this worker's row: created (or reset, a pid can be reused) when spawned, else refreshed."""
    now = timezone.now()
    values = {"seen_at": now, "rss_bytes": _rss(), "cluster": cluster[:100], "cluster_started_at": cluster_started_at}
    if spawned:
        values["started_at"] = now
    if WorkerBeat.objects.filter(name=name).update(**values):
        return
    try:
        with transaction.atomic():
            WorkerBeat.objects.create(name=name, **{"started_at": now, **values})
    except IntegrityError:
        # Pruned and re-created by ourselves between the update and the insert: nothing to do.
        WorkerBeat.objects.filter(name=name).update(**values)


class BeatThread(threading.Thread):
    def __init__(self, *, name: str, cluster: str, cluster_started_at: datetime | None) -> None:
        super().__init__(name="pulse-worker-beat", daemon=True)
        self.worker = name
        self.cluster = cluster
        self.cluster_started_at = cluster_started_at
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(settings.PULSE_WORKER_BEAT_SECONDS):
            try:
                beat(name=self.worker, cluster=self.cluster, cluster_started_at=self.cluster_started_at)
            except Exception:
                log.exception("worker beat of %s failed", self.worker)
            finally:
                # One short connection per beat: a held one per worker would double PostgreSQL's.
                connection.close()


_thread: BeatThread | None = None


def on_worker_spawned(**_: object) -> None:
    """django-q2's post_spawn, in the new worker process: first beat, then the beat thread."""
    global _thread
    from jobs.runner import worker_name

    name = worker_name()
    cluster, cluster_started_at = _cluster()
    try:
        beat(name=name, cluster=cluster, cluster_started_at=cluster_started_at, spawned=True)
    except Exception:
        log.exception("first beat of worker %s failed", name)
    finally:
        connection.close()
    _thread = BeatThread(name=name, cluster=cluster, cluster_started_at=cluster_started_at)
    _thread.start()
    # django-q2's own lines are silenced below warnings (one per task at info): say here that
    # the worker is up, where it takes jobs from and which handlers it can run.
    log.info("worker %s started (cluster %s): queue %s on the %s broker, handlers from %s", name, cluster,
             settings.Q_CLUSTER["name"], settings.PULSE_BROKER, ", ".join(settings.PULSE_HANDLER_MODULES))


def beats_prune(now: datetime | None = None) -> int:
    """Forget workers not seen for PRUNE_AFTER (each recycle leaves one row behind)."""
    deleted, _ = WorkerBeat.objects.filter(seen_at__lt=(now or timezone.now()) - PRUNE_AFTER).delete()
    return deleted


def connect() -> None:
    from django_q.signals import post_spawn

    post_spawn.connect(on_worker_spawned, dispatch_uid="pulse-worker-beat")
    _register_step()


def _register_step() -> None:
    from pulse_site.ticker import step

    step("jobs.beats_prune", every=60.0)(beats_prune)
