"""Schedules and executions as they travel in live events and API answers."""

from __future__ import annotations

from typing import Any

from budgets.money import money_str
from pulse_site.live.services import event_emit
from schedules.models import Execution, Schedule


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def schedule_summary(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": schedule.public_id,
        "name": schedule.name,
        "handler": schedule.handler,
        "cron": schedule.cron,
        "time_zone": schedule.time_zone,
        "enabled": schedule.enabled,
        "overlap_policy": schedule.overlap_policy,
        "misfire_policy": schedule.misfire_policy,
        "estimate_override": money_str(schedule.estimate_override),
        "next_run_at": _iso(schedule.next_run_at),
        "last_run_at": _iso(schedule.last_run_at),
        "broken_reason": schedule.broken_reason,
        "paused_reason": schedule.paused_reason,
    }


def execution_summary(execution: Execution) -> dict[str, Any]:
    job = execution.job if execution.job_id else None
    return {
        "id": execution.public_id,
        "schedule": execution.schedule.public_id,
        "fire_time": execution.fire_time.isoformat(),
        "trigger": execution.trigger,
        "status": execution.status,
        "job": job.public_id if job else None,
        "reason": execution.reason,
        "created_at": execution.created_at.isoformat(),
        "started_at": _iso(job.started_at) if job else None,
        "finished_at": _iso(execution.finished_at or (job.completed_at if job else None)),
        "duration_ms": execution.duration,
    }


def schedule_event(schedule: Schedule, kind: str, **extra: Any) -> None:
    event_emit(team=schedule.team_id, kind=f"schedule.{kind}", subject=schedule.public_id,
               payload={**schedule_summary(schedule), **extra})


def execution_event(execution: Execution, kind: str) -> None:
    event_emit(team=execution.team_id, kind=f"execution.{kind}", subject=execution.public_id,
               payload=execution_summary(execution))
