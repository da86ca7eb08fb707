"""Running Pulse's processes side by side: the supervisor behind `manage.py pulse_up`.

Each child runs in its own process group, so a Ctrl-C in the terminal reaches only the
supervisor, which then stops the children in order: SIGTERM to each child, a grace period,
then SIGKILL to whatever is left of each group (django-q2's qcluster can hang on SIGTERM,
django-q2#346, and its forked workers share its group, so killing the group leaves no orphan).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.management.base import OutputWrapper

# Beyond the workers' own stop timeout (a running handler's last chance, then it is interrupted
# and its job re-queued): the margin lets them settle before anything is killed.
SETTLE_MARGIN_SECONDS = 5.0
WEB_START_SECONDS = 120.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[str] | None = None
    reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ChildDied(Exception):
    def __init__(self, child: Child) -> None:
        code = child.process.returncode if child.process else None
        super().__init__(f"The {child.name} process exited unexpectedly (exit code {code}); stopped the others.")
        self.child = child


# The web process's uvicorn options (the Procfile's too). A WebSocket frame is at most 4,096
# characters (pulse_site.live.consumers.MAX_FRAME_CHARS, 16 KiB of UTF-8): uvicorn refuses one past
# 64 KiB itself, unread, where its default would take 16 MiB into memory first.
WEB_OPTIONS = ("--lifespan", "on", "--timeout-graceful-shutdown", "5", "--ws-max-size", "65536")


def pulse_children(*, host: str, port: int, python: str = sys.executable) -> list[Child]:
    manage = str(Path(settings.BASE_DIR) / "manage.py")
    return [
        Child("web", [python, "-m", "uvicorn", "pulse_site.asgi:application", "--host", host, "--port", str(port),
                      *WEB_OPTIONS]),
        Child("worker", [python, manage, "qcluster"]),
        Child("ticker", [python, manage, "pulse_ticker"]),
    ]


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Supervisor:
    """Start children, prefix their output, stop them all on a signal or when one dies."""

    def __init__(self, children: list[Child], *, out: IO[str] | OutputWrapper, tick: float = 0.1) -> None:
        self.children = children
        self.out = out
        self.tick = tick
        self.stop_signal: int | None = None
        self._write_lock = threading.Lock()

    def say(self, line: str) -> None:
        with self._write_lock:
            self.out.write(line if line.endswith("\n") else line + "\n")
            self.out.flush()

    def start(self) -> None:
        width = max(len(child.name) for child in self.children)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for child in self.children:
            child.process = subprocess.Popen(
                child.argv, cwd=settings.BASE_DIR, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                start_new_session=True,
            )
            child.reader = threading.Thread(target=self._relay, args=(child, width), daemon=True)
            child.reader.start()
            self.say(f"{child.name:<{width}} | started (pid {child.process.pid})")

    def _relay(self, child: Child, width: int) -> None:
        assert child.process is not None and child.process.stdout is not None
        for line in child.process.stdout:
            self.say(f"{child.name:<{width}} | {line.rstrip()}")

    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, frame: object) -> None:
            self.stop_signal = signum

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def wait_until(self, ready: Callable[[], bool], *, timeout: float) -> bool:
        """Poll `ready` until true; False on a stop request or the deadline. Raises ChildDied."""
        deadline = time.monotonic() + timeout
        while self.stop_signal is None and time.monotonic() < deadline:
            self._check_children()
            if ready():
                return True
            time.sleep(self.tick)
        return False

    def run(self, *, host: str, port: int) -> None:
        """Block until a stop signal (then return) or a child's death (then raise ChildDied)."""
        try:
            if self.wait_until(lambda: _accepts(host, port), timeout=WEB_START_SECONDS):
                self.say(f"Pulse is up on http://{host}:{port} (Ctrl-C stops it)")
            elif self.stop_signal is None:
                self.say(f"The web process did not answer on {host}:{port} within {WEB_START_SECONDS:.0f} s; "
                         "still waiting (Ctrl-C stops it).")
            self.wait_until(lambda: False, timeout=float("inf"))
        finally:
            self.stop()

    def _check_children(self) -> None:
        for child in self.children:
            if not child.alive:
                raise ChildDied(child)

    def stop(self) -> None:
        """SIGTERM each child's leader (not its group: see below), wait up to PULSE_STOP_TIMEOUT + a
        margin for every group to exit, then SIGKILL the groups still there."""
        grace = settings.PULSE_STOP_TIMEOUT + SETTLE_MARGIN_SECONDS
        for child in self.children:
            # The leader only: qcluster's sentinel stops its own workers in order, while a SIGTERM
            # to its whole group reached the workers mid-shutdown and hung it (django-q2#346).
            if child.alive:
                child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(self._group_alive(c) for c in self.children):
            time.sleep(self.tick)
        for child in self.children:
            if self._group_alive(child):
                self.say(f"{child.name} did not stop within {grace:.0f} s; killing it")
                self._signal_group(child, signal.SIGKILL)
        for child in self.children:
            if child.process is not None:
                child.process.wait()
            if child.reader is not None:
                child.reader.join(timeout=2)

    @staticmethod
    def _signal_group(child: Child, signum: int) -> None:
        if child.process is None:
            return
        try:
            os.killpg(child.process.pid, signum)
        except ProcessLookupError:
            pass

    @staticmethod
    def _group_alive(child: Child) -> bool:
        """True while any process of the child's group runs (the leader may go before its workers)."""
        if child.process is None:
            return False
        child.process.poll()  # reap the leader, or it would count as alive (a zombie) forever
        try:
            os.killpg(child.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
