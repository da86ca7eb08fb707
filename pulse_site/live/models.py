from __future__ import annotations

from django.db import models
from django.utils import timezone

# The events of the families few and far between (budget, schedule, team, member, token, queue,
# notification): not the jobs' and schedule runs' own, which are nearly all of them and are written
# on every job's way. The activity history finds these through partial indexes that cost the job
# path nothing; a query must repeat this condition word for word for the planner to use them.
RARE_EVENTS = ~models.Q(kind__startswith="job.") & ~models.Q(kind__startswith="execution.")

from pulse_site.teams.models import Team


class Event(models.Model):
    """The outbox behind every live update and the audit trail of what happened.

    Rows are written in the same transaction as the change they describe; the primary key is
    the sequence id clients resume from (`/ws/?since=<id>`).
    """

    id = models.BigAutoField(primary_key=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=64)
    subject = models.CharField(max_length=64, blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Replay: WHERE team_id = ? AND id > ? ORDER BY id.
            models.Index(fields=["team", "id"], name="event_team_seq"),
            # Retention: WHERE created_at < ? (batched deletes).
            models.Index(fields=["created_at"], name="event_created"),
            # The activity history by family or subject, for the rare events only (RARE_EVENTS).
            models.Index(fields=["team", "kind", "id"], condition=RARE_EVENTS, name="event_team_rare_kind"),
            models.Index(fields=["team", "subject", "id"], condition=RARE_EVENTS, name="event_team_rare_subject"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.kind} {self.subject}"

    def as_message(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "payload": self.payload,
            "at": self.created_at.isoformat(),
        }


class RelayCursor(models.Model):
    """How far the relay has forwarded the outbox; one row, locked by the relay that runs."""

    name = models.CharField(max_length=32, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    # Ids the cursor passed over at a gap older than the grace, each with when ([id, epoch
    # seconds]): a transaction that commits later still has its event passed on, once.
    late = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} at #{self.last_id}"
