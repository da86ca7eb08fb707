from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bench.harness import MEASUREMENTS, Config, run
from bench.procs import exit_on_sigterm
from bench.services import ServiceError


class Command(BaseCommand):
    help = "Benchmark Pulse beside plain django-q2 on a throw-away PostgreSQL database and Redis prefix."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the harness works")
        parser.add_argument("--only", default=",".join(MEASUREMENTS), help=f"comma-separated: {', '.join(MEASUREMENTS)}")
        parser.add_argument("--repeat", type=int, default=3, help="runs of each timed measurement")
        parser.add_argument("--json", dest="json_path", default="", help="write the results here")
        parser.add_argument("--database-url", default=os.environ.get(
            "PULSE_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pulse_bench"),
            help="created and dropped by the bench")
        parser.add_argument("--pages-database-url", default=os.environ.get("PULSE_BENCH_PAGES_DATABASE_URL", ""),
                            help="run the pages measurement here instead, created if missing and kept, so its "
                                 "history (a million jobs) is written once, e.g. postgres://postgres@127.0.0.1:5432/pages_bench")
        parser.add_argument("--redis-url", default=os.environ.get("PULSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
        parser.add_argument("--prefix", default="pulse_bench", help="Redis key prefix and queue names")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="MEASUREMENT.SIZE=N",
                            help="change one size, e.g. --set throughput.jobs=1000 (repeatable)")
        parser.add_argument("--log-dir", default=str(Path(tempfile.gettempdir()) / "pulse_bench"), help="the started processes' output")

    def handle(self, *args: Any, smoke: bool, only: str, repeat: int, json_path: str, database_url: str,
               redis_url: str, prefix: str, log_dir: str, overrides: list[str], pages_database_url: str,
               **options: Any) -> None:
        chosen = tuple(name.strip() for name in only.split(",") if name.strip())
        unknown = sorted(set(chosen) - set(MEASUREMENTS))
        if unknown or not chosen:
            raise CommandError(f"--only takes {', '.join(MEASUREMENTS)}; got {only!r}.")
        if repeat < 1:
            raise CommandError("--repeat must be at least 1.")
        if not database_url.startswith(("postgres://", "postgresql://")) or (
                pages_database_url and not pages_database_url.startswith(("postgres://", "postgresql://"))):
            raise CommandError("The bench runs on PostgreSQL: --database-url must be a postgres:// URL.")
        config = Config(database_url=database_url, redis_url=redis_url, prefix=prefix, repeat=repeat, smoke=smoke,
                        only=chosen, log_dir=Path(log_dir), overrides=tuple(overrides),
                        pages_database_url=pages_database_url)
        try:
            config.sizes()
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        exit_on_sigterm()
        try:
            report = run(config, lambda line: self.stdout.write(line))
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        if json_path:
            Path(json_path).write_text(json.dumps(report, indent=2, default=str))
            self.stdout.write(f"Wrote {json_path}")
