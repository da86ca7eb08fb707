"""Budget policy, usage counters, the append-only ledger they are rebuilt from, starts for the
rolling rate, alerts and overrides. Money is integer micro-units (budgets.money)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from pulse_site.ids import PublicIdField
from pulse_site.teams.models import Team


def default_thresholds() -> list[int]:
    return [80, 100]


class WindowKind(models.TextChoices):
    DAY = "day", "Today"
    WEEK = "week", "This week"
    MONTH = "month", "This month"


class BudgetPolicy(models.Model):
    """One per team, created on first use. Its row lock serializes every admission and settle
    of the team, which is what makes the counters below exact under concurrency."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="budget_policy")
    # None = unlimited; 0 = no paid work (free jobs still run).
    daily_limit = models.BigIntegerField(null=True, blank=True)
    weekly_limit = models.BigIntegerField(null=True, blank=True)
    monthly_limit = models.BigIntegerField(null=True, blank=True)
    calls_per_minute = models.PositiveIntegerField(null=True, blank=True)
    max_concurrent = models.PositiveIntegerField(null=True, blank=True)
    # Blank: the team's own time zone (so changing the team's zone moves the windows too).
    time_zone = models.CharField(max_length=64, blank=True, default="")
    week_start = models.PositiveSmallIntegerField(default=0)  # 0 = Monday
    alert_thresholds = models.JSONField(default=default_thresholds)

    class OverBudget(models.TextChoices):
        HOLD = "hold", "Hold until the budget allows"
        FAIL = "fail", "Fail at once with budget_exceeded"

    # What admission does with a job over a money limit (rate and concurrency always hold).
    over_budget = models.CharField(max_length=4, choices=OverBudget.choices, default=OverBudget.HOLD)
    # Jobs admitted and not yet settled; moved only under this row's lock.
    running = models.IntegerField(default=0)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "budget policies"
        constraints = [
            models.CheckConstraint(condition=Q(week_start__gte=0) & Q(week_start__lte=6), name="budget_week_start"),
        ]

    def __str__(self) -> str:
        return f"Budget of {self.team}"

    def limit_for(self, kind: str) -> int | None:
        return {"day": self.daily_limit, "week": self.weekly_limit, "month": self.monthly_limit}[kind]

    @property
    def holds_nothing(self) -> bool:
        """No limit of the team's own can hold a job (a handler's cap still may)."""
        return all(limit is None for limit in (self.daily_limit, self.weekly_limit, self.monthly_limit,
                                               self.calls_per_minute, self.max_concurrent))


class HandlerCap(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="handler_caps")
    handler = models.CharField(max_length=100)
    daily_limit = models.BigIntegerField(null=True, blank=True)
    weekly_limit = models.BigIntegerField(null=True, blank=True)
    monthly_limit = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["handler"]
        constraints = [
            # Also serves the gate's lookup WHERE team_id = ? AND handler = ?.
            models.UniqueConstraint(fields=["team", "handler"], name="handlercap_unique_team_handler"),
        ]

    def __str__(self) -> str:
        return f"{self.handler} cap of {self.team}"

    def limit_for(self, kind: str) -> int | None:
        return {"day": self.daily_limit, "week": self.weekly_limit, "month": self.monthly_limit}[kind]


class PolicyChange(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="budget_changes")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                           related_name="+")
    by_label = models.CharField(max_length=150, blank=True, default="")
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # Change history on the budget page and API: WHERE team_id = ? ORDER BY at DESC.
            models.Index(fields=["team", "-at"], name="policychange_team_at"),
        ]


class Usage(models.Model):
    """Spend of one team (scope '') or one handler of it in one window. Derived from Ledger."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="budget_usage")
    scope = models.CharField(max_length=100, blank=True, default="")
    kind = models.CharField(max_length=5, choices=WindowKind.choices)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    committed = models.BigIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["team", "scope", "kind", "-window_start"]
        constraints = [
            # Serves the gate's lookup of the current windows: WHERE team_id = ? AND scope IN (...) AND ...
            models.UniqueConstraint(fields=["team", "scope", "kind", "window_start"], name="usage_unique_window"),
        ]

    def __str__(self) -> str:
        return f"{self.team} {self.scope or 'team'} {self.kind} {self.window_start:%Y-%m-%d}"

    @property
    def spent(self) -> int:
        return self.committed + self.reserved


class Ledger(models.Model):
    """Append-only: every reservation, release, charge and override use. Usage = sums of this."""

    class Kind(models.TextChoices):
        RESERVE = "reserve", "Reserve"
        RELEASE = "release", "Release"
        CHARGE = "charge", "Charge"
        OVERRIDE = "override", "Override used"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="budget_ledger")
    job_id = models.CharField(max_length=40)  # the job's public id: budgets does not depend on jobs
    handler = models.CharField(max_length=100, blank=True, default="")
    attempt = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices)
    scope = models.CharField(max_length=100, blank=True, default="")
    window_kind = models.CharField(max_length=5, blank=True, default="")
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    amount = models.BigIntegerField()
    override = models.ForeignKey("Override", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Settle is idempotent per (job, attempt): a second settle cannot charge again.
            models.UniqueConstraint(fields=["job_id", "attempt", "kind", "scope", "window_kind"],
                                    name="ledger_unique_entry"),
        ]
        indexes = [
            # Repair: sums per window, WHERE team_id = ? AND window_start = ? GROUP BY scope, kind.
            models.Index(fields=["team", "window_start"], name="ledger_team_window"),
            # Spend history: WHERE team_id = ? AND kind = 'charge' AND at >= ?.
            models.Index(fields=["team", "kind", "at"], name="ledger_team_kind_at"),
        ]

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Ledger rows are append-only.")
        super().save(*args, **kwargs)


class Start(models.Model):
    """One admitted start, for the rolling 60 s rate; rows older than a minute are pruned."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()

    class Meta:
        indexes = [
            # The gate's count and prune: WHERE team_id = ? AND at > now - 60 s.
            models.Index(fields=["team", "at"], name="start_team_at"),
        ]


class Alert(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="budget_alerts")
    scope = models.CharField(max_length=100, blank=True, default="")
    window_kind = models.CharField(max_length=5, choices=WindowKind.choices)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField()
    spent = models.BigIntegerField(default=0)
    limit = models.BigIntegerField(default=0)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            # Each threshold fires once per team, scope, window and limit; a new window, or a
            # changed limit, re-arms it.
            models.UniqueConstraint(fields=["team", "scope", "window_kind", "window_start", "limit", "threshold"],
                                    name="alert_unique_window_limit_threshold"),
        ]
        indexes = [
            # The dashboard banner: WHERE team_id = ? AND window_end > now.
            models.Index(fields=["team", "window_end"], name="alert_team_window_end"),
        ]


class Override(models.Model):
    """An owner's or staff member's audited, capped, expiring permission to pass budget limits."""

    public_id = PublicIdField(prefix="OV")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="budget_overrides")
    amount = models.BigIntegerField()
    spent = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField()
    reason = models.CharField(max_length=500)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    # The maker's username as it was, kept when their user is deleted (created_by then empties);
    # empty: an operator's command.
    created_by_name = models.CharField(max_length=150, blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The gate's search for a usable override: WHERE team_id = ? AND expires_at > now.
            models.Index(fields=["team", "expires_at"], name="override_team_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} of {self.team}"

    @property
    def remaining(self) -> int:
        return max(0, self.amount - self.spent)
