"""The job as it travels in events: what a live list row or detail page needs to redraw."""

from __future__ import annotations

from typing import Any

from budgets.money import money_str
from jobs.daemons import daemon_state
from jobs.models import Job
from pulse_site.live.models import Event
from pulse_site.live.services import event_emit


def hold_reasons_text(reasons: object) -> str:
    """A held job's reasons (`hold_reasons`), each a sentence of its own."""
    messages = (str(r.get("message", "")).strip() for r in reasons or [] if isinstance(r, dict))  # type: ignore[attr-defined]
    return " ".join(m if m.endswith((".", "!", "?")) else f"{m}." for m in messages if m)


def job_summary(job: Job) -> dict[str, Any]:
    return {
        "id": job.public_id,
        "handler": job.handler,
        "status": job.status,
        "source": job.source,
        "created_by": job.created_by,
        "priority": job.priority,
        "progress": {"current": job.progress_current, "total": job.progress_total, "message": job.progress_message},
        "cost_estimate": money_str(job.cost_estimate),
        "cost_actual": money_str(job.cost_actual),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "hold_reasons": job.hold_reasons,
        "resume_at": job.resume_at.isoformat() if job.resume_at else None,
        "run_after": job.run_after.isoformat() if job.run_after else None,
        "cancel_requested": job.cancel_requested,
        "cancelled_by": job.cancelled_by or None,
        "parent": job.parent.public_id if job.parent_id and job.parent else None,
        "origin": job.origin or None,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
        "daemon": daemon_state(job),
    }


def job_event(job: Job, kind: str, **extra: Any) -> None:
    event_emit(team=job.team_id, kind=f"job.{kind}", subject=job.public_id, payload={**job_summary(job), **extra})


def job_event_row(job: Job, kind: str, **extra: Any) -> Event:
    """The unsaved event `job_event` would write, for a caller that writes it with other rows
    in the same transaction (jobs.runner's batches, the submit's one INSERT statement)."""
    return Event(team_id=job.team_id, kind=f"job.{kind}", subject=job.public_id, payload={**job_summary(job), **extra})
