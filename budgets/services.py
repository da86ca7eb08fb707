"""The budget gate: the one place where a team's limits decide whether a job may start.

Until per-team policies exist every admission passes; the shape of the decision (reasons,
resume_at, the pulse-state snapshot) is already the one job admission stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class AdmittableJob(Protocol):
    team_id: int
    handler: str
    cost_estimate: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: list[dict[str, Any]] = field(default_factory=list)
    resume_at: datetime | None = None
    pulse_state: dict[str, Any] = field(default_factory=dict)


def budget_admit(*, job: AdmittableJob) -> Decision:
    """Reserve the job's estimate and count its start, or say why it must wait."""
    return Decision(allowed=True)


def budget_preview(*, job: AdmittableJob) -> list[dict[str, Any]]:
    """Advisory: the reasons the job would be held if it were admitted now."""
    return []


def budget_settle(*, job: AdmittableJob, actual_micros: int) -> None:
    """Charge the actual cost of one attempt and release the rest of its reservation."""
    return None
