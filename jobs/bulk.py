"""One action on many jobs: the dashboard's selected and all-matching actions and the API's, each
job through the same service as its own button, so that a bulk retry is a retry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from jobs import services
from jobs.models import Job
from jobs.selectors import JobFilter, job_get_for_team, jobs_matching
from pulse_site.errors import PulseError
from pulse_site.ids import page_anchor
from pulse_site.teams.models import Team

# Jobs one request acts on: the ids given, or one batch of the matching ones.
BULK_MAX = 200
BULK_SERVICES: dict[str, Callable[..., Job]] = {
    "cancel": services.job_cancel, "retry": services.job_retry, "delete": services.job_delete,
}
VERBS = {"cancel": "cancelled", "retry": "retried", "delete": "deleted"}


@dataclass
class BulkOutcome:
    """What one request did: the ids acted on, the ids refused with why, and (all matching) the
    first job of the next batch, or None when no more match."""

    done: list[str] = field(default_factory=list)
    refused: list[tuple[str, PulseError]] = field(default_factory=list)
    cursor: str | None = None

    def summary(self, action: str) -> str:
        """"1 cancelled, 2 refused: <why> (2)." — each kind of refusal once, with how many it had."""
        text = f"{len(self.done)} {VERBS[action]}, {len(self.refused)} refused"
        if not self.refused:
            return text + "."
        why: dict[str, list[str]] = {}
        for _, exc in self.refused:
            why.setdefault(exc.code, []).append(exc.message)
        return text + ": " + " ".join(f"{messages[0].rstrip('.')} ({len(messages)})." for messages in why.values())


def jobs_bulk(*, team: Team, action: str, ids: list[str], by: str) -> BulkOutcome:
    """`action` on each of the team's jobs `ids`. An id of another team's job is refused as one that
    does not exist: the answer never tells which ids exist elsewhere."""
    outcome = BulkOutcome()
    for job_id in dict.fromkeys(ids):
        try:
            job = job_get_for_team(team=team, job_id=job_id)
        except PulseError as exc:
            outcome.refused.append((job_id, exc))
        else:
            _act(outcome, action, job, by)
    return outcome


def jobs_bulk_matching(*, team: Team, action: str, filters: JobFilter, cursor: str | None, by: str) -> BulkOutcome:
    """`action` on one batch (BULK_MAX, newest first) of the team's jobs matching `filters`, from
    `cursor` (the first job of this batch, as the last outcome gave it: the last job a batch acted on
    may be gone, deleted by it). Raises a `cursor` error for one that is no job of the team."""
    rows = jobs_matching(team=team, filters=filters)
    if cursor:
        (anchor,) = page_anchor(Job.objects.for_team(team), cursor, "JB", what="a job of this team")
        rows = rows.filter(pk__lte=anchor)
    batch = list(rows.order_by("-pk")[:BULK_MAX + 1])
    outcome = BulkOutcome(cursor=batch[BULK_MAX].public_id if len(batch) > BULK_MAX else None)
    for job in batch[:BULK_MAX]:
        _act(outcome, action, job, by)
    return outcome


def _act(outcome: BulkOutcome, action: str, job: Job, by: str) -> None:
    try:
        BULK_SERVICES[action](job=job, by=by)
    except PulseError as exc:
        outcome.refused.append((job.public_id, exc))
    else:
        outcome.done.append(job.public_id)
