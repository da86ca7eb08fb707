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


# The PostgreSQL configuration takes longer than the embedded one: it runs in this many parts
# (tests/sharding.py splits the test files between them) beside it. Much of the suite waits (on real
# processes, browsers, commits): four runs on two cores keep them busier (measured on a 2-core
# machine, the whole suite: 15.4 min in two parts, 14.9 min in three).
PRODUCTION_PARTS = 3
# Each part after the first takes a Redis database this many further on (three parts fit in 16).
REDIS_DATABASE_STEP = 5


@dataclass
class Run:
    label: str
    env: dict[str, str]
    # Runs with one label are the parts of one configuration: their results are one.
    part: str = ""


def suite_runs(environ: dict[str, str]) -> list[Run]:
    """The two configurations every change must pass: production-like (in PRODUCTION_PARTS parts,
    each with a database, a Redis database and prefixes of its own), and the embedded default."""
    # (A part's own settings are dropped too: pulse_test run by a test of a part starts afresh.)
    embedded = {k: v for k, v in environ.items()
                if k not in ("DATABASE_URL", "REDIS_URL", "PULSE_BROKER", "PULSE_TEST_SHARD")}
    database = environ.get("PULSE_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL
    redis = environ.get("PULSE_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    parts = [Run("PostgreSQL + Redis", {**embedded, **_part_env(environ, database, redis, n)}, f"{n}/{PRODUCTION_PARTS}")
             for n in range(1, PRODUCTION_PARTS + 1)]
    return [*parts, Run("embedded (SQLite, no Redis)", embedded)]


def _part_env(environ: dict[str, str], database: str, redis: str, n: int) -> dict[str, str]:
    """Part `n`'s settings: the first keeps the names given; the others add `_<n>` to the database
    and the prefixes, and take a Redis database REDIS_DATABASE_STEP·(n−1) further on (pub/sub
    channels span Redis's databases: the prefixes keep the parts' live events apart)."""
    env = {"DATABASE_URL": database, "REDIS_URL": redis, "PULSE_TEST_SHARD": f"{n}/{PRODUCTION_PARTS}"}
    if n == 1:
        return env
    base, _, index = redis.rstrip("/").rpartition("/")
    if index.isdigit():
        env["REDIS_URL"] = f"{base}/{(int(index) + REDIS_DATABASE_STEP * (n - 1)) % 16}"
    else:
        env["REDIS_URL"] = f"{redis.rstrip('/')}/{REDIS_DATABASE_STEP * (n - 1)}"
    env["DATABASE_URL"] = f"{database}_{n}"
    for name in ("PULSE_CHANNEL_PREFIX", "PULSE_CACHE_PREFIX", "PULSE_QUEUE_NAME"):
        env[name] = f"{environ.get(name) or 'pulse'}_{n}"
    return env


def _by_configuration(parts: list[tuple[str, int, float]]) -> list[tuple[str, int, float]]:
    """One result per configuration from its parts': passed when every part passed or had no test
    of the selection (a filter may pick one file), none ran when no part ran any; its time the
    longest part's."""
    results: list[tuple[str, int, float]] = []
    for label in dict.fromkeys(label for label, _, _ in parts):
        codes = [code for name, code, _ in parts if name == label]
        seconds = max(took for name, _, took in parts if name == label)
        failed = [code for code in codes if code not in (0, PYTEST_NO_TESTS)]
        code = failed[0] if failed else 0 if 0 in codes else PYTEST_NO_TESTS
        results.append((label, code, seconds))
    return results


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
        # The configurations (and the parts of one) run side by side (much of the suite waits on
        # real processes and browsers, so they share two cores well): the first one's output
        # streams, the others' is kept and printed when the first ends. The slowest tests are listed at the end of each.
        first, *others = suite_runs(dict(os.environ))
        command = [sys.executable, "-m", "pytest", "-p", "tests.sharding", "--durations=15", *pytest_args]
        started = time.monotonic()
        background = [_Background(run, command, started) for run in others]
        try:
            part = f", part {first.part}" if first.part else ""
            self.stdout.write(self.style.MIGRATE_HEADING(f"== Tests on {first.label}{part} =="))
            code = subprocess.call(command, env=first.env, cwd=settings.BASE_DIR)
            parts = [(first.label, code, time.monotonic() - started)]
            for job in background:
                job.thread.join()
                part = f", part {job.run.part}" if job.run.part else ""
                self.stdout.write(self.style.MIGRATE_HEADING(f"== Tests on {job.run.label}{part} (ran alongside) =="))
                self.stdout.write(job.output())
                parts.append((job.run.label, job.code, job.seconds))
        finally:
            for job in background:
                job.stop()
        results = _by_configuration(parts)
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
