"""One action on many jobs: the dashboard's selected and all-matching actions and the API's, each
job through the same service as its own button, so that a bulk retry is a retry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from jobs import services
from jobs.models import Job
from jobs.selectors import JobFilter, job_get_for_team, jobs_matching
from pulse_site.errors import PulseError
from pulse_site.paging import cursor_open, cursor_seal
from pulse_site.teams.models import Team

# Jobs one request acts on: the ids given, or one batch of the matching ones.
BULK_MAX = 200
NOT_A_BATCH_CURSOR = "Not a cursor of this action: pass the cursor the last batch answered."
BULK_SERVICES: dict[str, Callable[..., Job]] = {
    "cancel": services.job_cancel, "retry": services.job_retry, "delete": services.job_delete,
}
VERBS = {"cancel": "cancelled", "retry": "retried", "delete": "deleted"}


@dataclass
class BulkOutcome:
    """What one request did: the ids acted on, the ids refused with why, and (all matching) where
    the batch stopped, for the next (jobs_bulk_matching), or None when no more match."""

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
    """`action` on one batch (BULK_MAX, newest first) of the team's jobs matching `filters`, below
    `cursor`: where the last batch stopped, as its outcome gave it (its last job's sort key, sealed
    by pulse_site.paging.cursor_seal). It names no job, so a job deleted or changed between two
    batches (by the action itself, anyone else or the retention) neither stops the action nor
    moves it. Raises a `cursor` error for a cursor no batch of this team gave."""
    rows = jobs_matching(team=team, filters=filters)
    scope = _cursor_scope(team)
    if cursor:
        rows = rows.filter(pk__lt=cursor_open(scope, cursor, refused=NOT_A_BATCH_CURSOR)[0])
    batch = list(rows.order_by("-pk")[:BULK_MAX + 1])
    more, batch = len(batch) > BULK_MAX, batch[:BULK_MAX]
    outcome = BulkOutcome(cursor=cursor_seal(scope, [batch[-1].pk]) if more else None)
    for job in batch:
        _act(outcome, action, job, by)
    return outcome


def _cursor_scope(team: Team) -> str:
    return f"jobs.bulk:{team.pk}"


def _act(outcome: BulkOutcome, action: str, job: Job, by: str) -> None:
    try:
        BULK_SERVICES[action](job=job, by=by)
    except PulseError as exc:
        outcome.refused.append((job.public_id, exc))
    else:
        outcome.done.append(job.public_id)
