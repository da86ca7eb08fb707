"""PostgreSQL and Redis for the bench: used when they answer, otherwise started as on this
machine (a Debian PostgreSQL cluster with `pg_ctlcluster`, a `redis-server` without persistence)
and stopped again at the end. What the bench starts, it stops; what was running, it leaves alone.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlparse

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
START_TIMEOUT = 60.0


class ServiceError(RuntimeError):
    """A service the bench needs neither answers nor can be started here; says which and why."""


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} did not answer within {START_TIMEOUT:.0f} s of its start")
        time.sleep(0.2)


def _debian_cluster(port: int) -> tuple[str, str]:
    """The (version, name) of the Debian PostgreSQL cluster configured on `port` (pg_lsclusters)."""
    if shutil.which("pg_lsclusters") is None:
        raise ServiceError(f"PostgreSQL does not answer on port {port} and there is no pg_lsclusters to start it")
    listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(port):
            return fields[0], fields[1]
    raise ServiceError(f"PostgreSQL does not answer on port {port} and no cluster of this machine uses that port")


@contextmanager
def _postgres(url: str, say: Callable[[str], None]) -> Iterator[None]:
    parts = urlparse(url)
    host, port = parts.hostname or "", parts.port or 5432
    if _answers(host, port):
        yield
        return
    if host not in LOCAL_HOSTS:
        raise ServiceError(f"PostgreSQL at {host}:{port} does not answer (the bench starts only a local one)")
    version, name = _debian_cluster(port)
    say(f"Starting PostgreSQL {version}/{name} on port {port} (stopped again at the end)")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"], check=True)
    try:
        _wait(lambda: _answers(host, port), f"PostgreSQL {version}/{name}")
        yield
    finally:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "stop", "--", "-m", "fast"],
                       check=False)


@contextmanager
def _redis(url: str, say: Callable[[str], None]) -> Iterator[None]:
    parts = urlparse(url)
    host, port = parts.hostname or "", parts.port or 6379
    if _answers(host, port):
        yield
        return
    if host not in LOCAL_HOSTS or shutil.which("redis-server") is None:
        raise ServiceError(f"Redis at {host or '127.0.0.1'}:{port} does not answer and cannot be started here")
    pidfile = Path(tempfile.gettempdir()) / f"pulse-bench-redis-{port}.pid"
    say(f"Starting redis-server on port {port} (stopped again at the end)")
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                    "--appendonly", "no", "--pidfile", str(pidfile)], check=True, stdout=subprocess.DEVNULL)
    try:
        _wait(lambda: _answers(host, port), f"redis-server on port {port}")
        yield
    finally:
        subprocess.run(["redis-cli", "-h", host or "127.0.0.1", "-p", str(port), "shutdown", "nosave"],
                       check=False, capture_output=True)
        pidfile.unlink(missing_ok=True)


@contextmanager
def local_services(*, database_urls: list[str], redis_url: str, say: Callable[[str], None]) -> Iterator[None]:
    """PostgreSQL (for each server among `database_urls`) and Redis answering for the `with` body."""
    with ExitStack() as stack:
        servers = {(urlparse(u).hostname, urlparse(u).port): u for u in database_urls if u}
        for url in servers.values():
            stack.enter_context(_postgres(url, say))
        stack.enter_context(_redis(redis_url, say))
        yield
