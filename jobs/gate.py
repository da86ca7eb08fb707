"""The jobs' own admission rules, checked before the budget gate: a paused queue and exclusive
handlers. `claim` enforces them under locks; the release path asks the same questions without
locks (advisory) before sending a held job back."""

from __future__ import annotations

import os
from typing import Any

import psutil
from django.conf import settings
from django.db.models import Exists, OuterRef, Q

from jobs.handlers.registry import Handler
from jobs.models import Job, QueuePause
from pulse_site.errors import Conflict
from pulse_site.teams.models import Team

GATE_KINDS = ("queue_paused", "exclusive")


def _pauses(*, team_id: Any, handler: Any) -> Any:
    return QueuePause.objects.filter(ended_at__isnull=True).filter(
        Q(scope=QueuePause.Scope.GLOBAL) | Q(scope=QueuePause.Scope.TEAM, team_id=team_id)
        | Q(scope=QueuePause.Scope.HANDLER, handler=handler)
    )


def paused_annotation() -> Exists:
    """For a jobs query: whether a pause in force stops the row's job (annotated as `paused`, it
    spares the claim a query of its own in the usual case, no pause)."""
    return Exists(_pauses(team_id=OuterRef("team_id"), handler=OuterRef("handler")))


def pause_in_force(*, team_id: int, handler: str) -> QueuePause | None:
    """The pause that stops this team's jobs of `handler` from starting, if any (global first)."""
    pauses = _pauses(team_id=team_id, handler=handler)
    order = {QueuePause.Scope.GLOBAL: 0, QueuePause.Scope.HANDLER: 1, QueuePause.Scope.TEAM: 2}
    return min(pauses, key=lambda p: order[p.scope], default=None)


def _pause_reason(pause: QueuePause) -> dict[str, Any]:
    target = {"team": "The team's queue", "handler": f"The queue of {pause.handler} (every team)",
              "global": "Every team's queue"}[pause.scope]
    return {"kind": "queue_paused", "pause": pause.public_id, "scope": pause.scope, "by": pause.paused_by,
            "since": pause.created_at.isoformat(), "resume_at": None,
            "message": f"{target} is paused by {pause.paused_by}: {pause.reason}"}


def _exclusive_running(job: Job, spec: Handler) -> str | None:
    return (
        Job.objects.filter(team_id=job.team_id, handler=spec.name, status=Job.Status.RUNNING)
        .exclude(pk=job.pk).values_list("public_id", flat=True).first()
    )


def _exclusive_reason(spec: Handler, running: str) -> dict[str, Any]:
    return {"kind": "exclusive", "handler": spec.name, "running": running, "resume_at": None,
            "message": f"{spec.name} runs one job at a time; it starts when {running} ends."}


def gate_reasons(*, job: Job, spec: Handler, lock: bool = False, paused: bool | None = None) -> list[dict[str, Any]]:
    """Why the job may not start now by the jobs' own rules (empty: it may).

    With `lock` (admission) the team row is locked first for an exclusive handler, so that two
    workers admitting two of its jobs at once take turns and the second sees the first running.
    `paused`: whether a pause is in force for the job, if the caller read it with the job
    (`paused_annotation`); None to look it up here.
    """
    reasons: list[dict[str, Any]] = []
    pause = pause_in_force(team_id=job.team_id, handler=job.handler) if paused is not False else None
    if pause is not None:
        reasons.append(_pause_reason(pause))
    if spec.exclusive:
        if lock:
            # NO KEY UPDATE: admissions take turns, while inserts naming the team (their foreign-key
            # checks take KEY SHARE) are not blocked.
            list(Team.objects.select_for_update(no_key=True).filter(pk=job.team_id).values_list("pk", flat=True))
        running = _exclusive_running(job, spec)
        if running is not None:
            reasons.append(_exclusive_reason(spec, running))
    return reasons


def gate_check_submittable(*, team: Team, spec: Handler) -> None:
    """An exclusive "refuse" handler answers 409 while one of the team's jobs of it runs."""
    if spec.exclusive != "refuse":
        return
    running = (Job.objects.filter(team=team, handler=spec.name, status=Job.Status.RUNNING)
               .values_list("public_id", flat=True).first())
    if running is not None:
        raise Conflict(f"{spec.name} runs one job at a time and {running} is running; try again when it ends.",
                       code="handler_busy", fields={"handler": [f"Busy: {running} is running."]})


def system_load_reason() -> dict[str, Any] | None:
    """Why this machine should start no job now (memory or CPU load over the configured
    threshold), or None. Off unless PULSE_ADMIT_MAX_MEMORY_PERCENT / _LOAD_PER_CPU are set."""
    max_memory = settings.PULSE_ADMIT_MAX_MEMORY_PERCENT
    if max_memory > 0:
        used = psutil.virtual_memory().percent
        if used > max_memory:
            return {"kind": "system_load", "resource": "memory", "value": used, "limit": max_memory,
                    "message": f"The worker's machine uses {used:.0f} % of its memory (limit {max_memory:g} %); "
                               "the job waits for another worker or a later try."}
    max_load = settings.PULSE_ADMIT_MAX_LOAD_PER_CPU
    if max_load > 0:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
        if load > max_load:
            return {"kind": "system_load", "resource": "cpu", "value": round(load, 2), "limit": max_load,
                    "message": f"The worker's machine has a load of {load:.2f} per CPU (limit {max_load:g}); "
                               "the job waits for another worker or a later try."}
    return None
