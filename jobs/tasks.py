"""The one entry point django-q2 knows: it is handed a job id and nothing else."""

from __future__ import annotations

from jobs.runner import run_job as _run_job


def run_job(job_id: str) -> None:
    _run_job(job_id)
