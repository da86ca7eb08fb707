from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pulse"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# pytest's "no tests were collected": a filter that matches nothing must not look like a pass.
PYTEST_NO_TESTS = 5


@dataclass
class Run:
    label: str
    env: dict[str, str]


def suite_runs(environ: dict[str, str]) -> list[Run]:
    """The two configurations every change must pass: production-like, and the embedded default."""
    embedded = {k: v for k, v in environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PULSE_BROKER")}
    production = {
        **embedded,
        "DATABASE_URL": environ.get("PULSE_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL,
        "REDIS_URL": environ.get("PULSE_TEST_REDIS_URL") or DEFAULT_REDIS_URL,
    }
    return [Run("PostgreSQL + Redis", production), Run("embedded (SQLite, no Redis)", embedded)]


class Command(BaseCommand):
    help = (
        "Run the test suite twice, against PostgreSQL + Redis and against the embedded default; "
        "arguments are passed to pytest (e.g. tests/teams -k token)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("pytest_args", nargs="*", help="passed to pytest unchanged")

    def run_from_argv(self, argv: list[str]) -> None:
        # pytest's own options (-k, -x, --lf …) would be refused by Django's parser: everything
        # after the command name goes to pytest verbatim, except a lone --help.
        rest = argv[2:]
        super().run_from_argv(argv[:2] + (rest if rest in (["-h"], ["--help"]) else ["--", *rest]))

    def handle(self, *args: Any, pytest_args: list[str], **options: Any) -> None:
        # The configurations run side by side (much of the suite waits on real processes and
        # browsers, so two runs share two cores well): the first one's output streams, the others'
        # is kept and printed when the first ends. The slowest tests are listed at the end of each.
        first, *others = suite_runs(dict(os.environ))
        command = [sys.executable, "-m", "pytest", "--durations=15", *pytest_args]
        started = time.monotonic()
        background = [_Background(run, command, started) for run in others]
        try:
            self.stdout.write(self.style.MIGRATE_HEADING(f"== Tests on {first.label} =="))
            code = subprocess.call(command, env=first.env, cwd=settings.BASE_DIR)
            results = [(first.label, code, time.monotonic() - started)]
            for job in background:
                job.thread.join()
                self.stdout.write(self.style.MIGRATE_HEADING(f"== Tests on {job.run.label} (ran alongside) =="))
                self.stdout.write(job.output())
                results.append((job.run.label, job.code, job.seconds))
        finally:
            for job in background:
                job.stop()
        failed = [label for label, code, _ in results if code != 0]
        for label, code, seconds in results:
            verdict = "passed" if code == 0 else "no tests ran" if code == PYTEST_NO_TESTS else "FAILED"
            line = f"{label}: {verdict} (pytest exit {code}) in {seconds:.1f} s"
            self.stdout.write(self.style.SUCCESS(line) if code == 0 else self.style.ERROR(line))
        if failed:
            raise CommandError(f"The tests did not pass on: {', '.join(failed)}.")


class _Background:
    """One configuration's pytest in the background, its output kept in a temporary file."""

    def __init__(self, run: Run, command: list[str], started: float) -> None:
        self.run, self.started = run, started
        self.code, self.seconds = -1, 0.0
        self.log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self.process = subprocess.Popen(command, env=run.env, cwd=settings.BASE_DIR,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self) -> None:
        self.code = self.process.wait()
        self.seconds = time.monotonic() - self.started

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        if self.process.poll() is None:  # interrupted: leave no pytest behind
            self.process.kill()
            self.process.wait()
        self.log.close()
