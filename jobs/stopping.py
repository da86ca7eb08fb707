"""Graceful stop of a worker process (issue 9 item 9).

A worker told to stop takes no new job (a task it still receives goes back to the backlog
unclaimed), lets a running handler finish for up to PULSE_STOP_TIMEOUT seconds, then interrupts it
(jobs.runner.hard_timeout raises JobInterrupted) and puts its job back in the queue at once.

How the stop reaches a worker:
- SIGTERM or SIGINT to the worker itself (systemd's control group, a Ctrl-C in a terminal): the
  handler installed at django-q2's post_spawn sets the flag; the worker keeps running until its
  task settles (django-q2's default would kill it on the spot).
- SIGTERM to the cluster's leader only (`pulse_up`, the fault tests): django-q2's sentinel stops
  the pusher and queues STOP pills, but never tells a worker that is busy. The leader's signal
  handler is wrapped to forward SIGINT to the sentinel's children: the workers take it as a stop,
  the pusher and monitor ignore it (the sentinel set SIGINT to ignored before forking them).

A SIGTERM to the whole group also kills the sentinel (django-q2 leaves it at the default), so no
STOP pill ever reaches the workers: a stopping worker whose sentinel is gone exits by itself as
soon as it holds no job (jobs.runner.run_job marks the time it does), instead of staying behind
as an orphan.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

log = logging.getLogger("pulse.jobs")

# time.monotonic() after which a running handler is interrupted; None while not stopping.
_stop_at: float | None = None
# Set by hard_timeout while a handler runs in this process: re-arms its alarm for the stop.
_rearm: Callable[[], None] | None = None
# The worker's sentinel (its parent at spawn) and whether run_job is handling a task right now.
_sentinel_pid: int | None = None
_busy = False
_watcher: threading.Thread | None = None


def stopping() -> bool:
    return _stop_at is not None


def stop_at() -> float | None:
    return _stop_at


def request_stop(signum: int | None = None, frame: Any = None) -> None:
    """Stop taking jobs; a running handler has PULSE_STOP_TIMEOUT seconds left. Signal-safe."""
    global _stop_at
    if _stop_at is None:
        _stop_at = time.monotonic() + settings.PULSE_STOP_TIMEOUT
        _watch_for_orphaning()
    if _rearm is not None:
        _rearm()


def set_busy(busy: bool) -> None:
    global _busy
    _busy = busy


def _watch_for_orphaning() -> None:
    global _watcher
    if _sentinel_pid is None or _watcher is not None:
        return  # not a worker process (tests drive the flag in process)

    def watch() -> None:
        while True:
            if not _busy and os.getppid() != _sentinel_pid:
                os._exit(0)  # our job is settled and nobody will send us a STOP
            time.sleep(0.2)

    _watcher = threading.Thread(target=watch, name="pulse-stop-watch", daemon=True)
    _watcher.start()


def set_rearm(rearm: Callable[[], None] | None) -> None:
    global _rearm
    _rearm = rearm


def reset() -> None:
    """Forget a stop request (tests, which drive the flag in one process)."""
    global _stop_at
    _stop_at = None


def install() -> None:
    """In a worker process (main thread): SIGTERM and SIGINT ask for a graceful stop."""
    global _sentinel_pid
    _sentinel_pid = os.getppid()
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def on_worker_spawned(**_: object) -> None:
    install()


def forward_to_workers(sentinel_pid: int) -> None:
    """From the cluster's leader: tell the sentinel's children (its workers) to stop."""
    import psutil

    try:
        children = psutil.Process(sentinel_pid).children()
    except psutil.Error:
        return
    for child in children:
        try:
            os.kill(child.pid, signal.SIGINT)
        except ProcessLookupError:
            pass


def _wrap_cluster_signal_handler() -> None:
    from django_q.cluster import Cluster

    original = Cluster.sig_handler
    if getattr(original, "pulse_forwards_stop", False):
        return

    def sig_handler(self: Any, signum: int, frame: Any) -> None:
        sentinel = getattr(self, "sentinel", None)
        with contextlib.suppress(Exception):  # a log line must not stop the stop
            # Named as its workers name it (jobs.beats: the host and their parent, the sentinel).
            log.info("cluster %s:%s stopping on %s: its workers take no new job, and a running handler has %s s "
                     "(PULSE_STOP_TIMEOUT) before it is interrupted and its job queued again", socket.gethostname(),
                     sentinel.pid if sentinel is not None and sentinel.pid else os.getpid(),
                     signal.Signals(signum).name, settings.PULSE_STOP_TIMEOUT)
        if sentinel is not None and sentinel.pid:
            try:
                forward_to_workers(sentinel.pid)
            except Exception:  # never let the forward stop django-q2's own shutdown
                log.exception("forwarding the stop to the workers failed")
        original(self, signum, frame)

    sig_handler.pulse_forwards_stop = True  # type: ignore[attr-defined]
    Cluster.sig_handler = sig_handler


def connect() -> None:
    from django_q.signals import post_spawn

    post_spawn.connect(on_worker_spawned, dispatch_uid="pulse-worker-stop")
    _wrap_cluster_signal_handler()
