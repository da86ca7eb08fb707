"""Demo jobs that show, within a minute of start, what a schedule alone would take longer to show:
a job that fails and is retried, and a job held by its team's budget with the reason and when it
resumes. Each is submitted once, ever (an idempotency key), so reloading the demo adds nothing."""

from __future__ import annotations

from jobs.models import Job
from jobs.services import job_submit
from pulse_site.teams.models import Team

# (team slug, idempotency key, handler, payload, estimate in micro-units or None for the handler's)
DEMO_JOBS: list[tuple[str, str, str, dict[str, object], int | None]] = [
    # network_error is retryable: three attempts a second or two apart, then failed with its code.
    ("acme-analytics", "demo-flaky-upload", "pulse.fail",
     {"code": "network_error", "message": "Upload to the archive was reset by the peer (demo)", "delay": 1}, None),
    # Acme's day allows 0.50: the first big job runs and is charged 0.30; the second then waits for
    # tomorrow's reset (0.30 + 0.30 > 0.50), held with the reason and its resume time.
    ("acme-analytics", "demo-big-export-1", "pulse.sleep", {"steps": 3, "seconds": 1}, 300_000),
    ("acme-analytics", "demo-big-export-2", "pulse.sleep", {"steps": 3, "seconds": 1}, 300_000),
]


def demo_jobs(teams: dict[str, Team]) -> list[Job]:
    return [
        job_submit(team=teams[slug], handler=handler, payload=payload, source=Job.Source.API,
                   idempotency_key=key, created_by="demo", estimate_micros=estimate).job
        for slug, key, handler, payload, estimate in DEMO_JOBS
    ]
