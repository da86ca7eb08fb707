"""Processes the bench starts: each in its own process group, always stopped (group killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def spawn(args: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    log_dir = Path(env.get("PULSE_BENCH_LOG_DIR") or tempfile.gettempdir())
    log = open(log_dir / f"{log_name}.log", "ab")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the group, then SIGKILL what is left: qcluster can hang on SIGTERM (django-q2#346)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group (forked workers)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` stops what this process started."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


@contextmanager
def running(specs: list[tuple[list[str], str]], env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        for args, name in specs:
            started.append(spawn(args, env, name))
        yield started
    finally:
        for process in started:
            stop(process)


def wait_for(condition, *, timeout: float, every: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
