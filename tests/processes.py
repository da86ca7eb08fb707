"""Pulse's own processes for tests: `manage.py qcluster`, `pulse_ticker` (and anything else
`manage.py` or `python -m` runs) started against the test database on a queue of the test's own,
killed and restarted at will. The `processes` fixture in tests/conftest.py hands one out."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Every handler module the real-process tests use; each suite's handlers have names of their own.
HANDLER_MODULES = ",".join([
    "jobs.handlers.builtin",
    "jobs.handlers.http",
    "tests.jobs.cluster_handlers",
    "tests.budgets.cluster_handlers",
    "tests.fault.fault_handlers",
])


def database_url(settings_dict: dict[str, Any], vendor: str) -> str:
    if vendor == "postgresql":
        return f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"
    return f"sqlite:///{settings_dict['NAME']}"


class Processes:
    """Start, signal, kill and reap processes, each in its own process group. Each process's
    output goes to a file of its own in `logs` (a failed test shows their last lines)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.running: list[subprocess.Popen] = []
        self.logs = logs
        self.log_files: list[Path] = []

    def start(self, *command: str, **env: str) -> subprocess.Popen:
        """`manage.py <command>`; a command starting with "-m" runs `python -m …` instead."""
        argv = [sys.executable, *command] if command[:1] == ("-m",) else [sys.executable, "manage.py", *command]
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{len(self.log_files) + 1:02d}-{'-'.join(command).strip('-').replace('/', '_')[:60]}.log"
        self.log_files.append(log)
        with log.open("w") as output:
            proc = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **env}, stdout=output, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.running.append(proc)
        return proc

    def log_tails(self, lines: int = 40) -> str:
        """The last `lines` lines of each process's output, for a failure's report."""
        parts = []
        for log in self.log_files:
            tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
            parts.append(f"--- {log} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    def signal(self, proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL one process group: no handler, no cleanup, as a power cut would."""
        self.signal(proc, signal.SIGKILL)
        proc.wait()
        self.running.remove(proc)

    def kill_all(self) -> None:
        """SIGKILL every process group at once."""
        for proc in self.running:
            self.signal(proc, signal.SIGKILL)
        for proc in self.running:
            proc.wait()
        self.running.clear()

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL what has not exited after `grace` (django-q2 can hang on SIGTERM).

        The leader only, as pulse_up does: qcluster's leader tells its workers and exits in ~3 s,
        while a SIGTERM to the whole group hangs it until the SIGKILL (django-q2#346), which made
        every cluster test's teardown take the full grace."""
        for proc in self.running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.signal(proc, signal.SIGKILL)
                proc.wait()
            # A worker stopping gracefully may outlive its leader until its job settles.
            while self._group_alive(proc) and time.monotonic() < deadline:
                time.sleep(0.1)
            self.signal(proc, signal.SIGKILL)
        self.running.clear()

    @staticmethod
    def _group_alive(proc: subprocess.Popen) -> bool:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return False
        return True


def processes_for_test(settings: Any, monkeypatch: Any, connection: Any, logs: Path) -> Iterator[Processes]:
    """The `processes` fixture's body: a queue of the test's own (so nothing left in the broker by
    another run is picked up), short leases and ticks, every test handler module loaded. The
    processes' output goes to `logs` (PULSE_TEST_PROCESS_LOGS=<dir> puts it there instead, kept)."""
    name = f"pulse-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PULSE_QUEUE_NAME", name)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "name": name}
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "PREFIX", name, raising=False)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", name, raising=False)
    monkeypatch.setattr(Conf, "Q_STAT", f"django_q:{name}:cluster", raising=False)
    procs = Processes({
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict, connection.vendor),
        "PULSE_QUEUE_NAME": name,
        "PULSE_LEASE_SECONDS": "3",
        "PULSE_CANCEL_POLL_MS": "100",
        "PULSE_TICK_MS": "200",
        "PULSE_WORKERS": "2",
        "PULSE_STOP_TIMEOUT": "2",
        "PULSE_HANDLER_MODULES": HANDLER_MODULES,
    }, Path(os.environ["PULSE_TEST_PROCESS_LOGS"]) / name if os.environ.get("PULSE_TEST_PROCESS_LOGS") else logs)
    yield procs
    procs.stop_all()


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition",
             every: float = 0.1) -> Any:
    """Poll `condition` until it returns something true (returned) or `timeout` s pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} not reached within {timeout} s")
