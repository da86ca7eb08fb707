from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from pulse_site.ids import PublicIdField
from pulse_site.zones import zone_names, zone_refusal

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def validate_time_zone(value: str) -> None:
    if value not in zone_names():
        raise ValidationError(zone_refusal(value))


class Team(models.Model):
    public_id = PublicIdField(prefix="TM")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    # Retention in days, set by the team's owners and admins; empty: the deployment's default
    # (PULSE_JOB_RETENTION_DAYS, PULSE_EXECUTION_RETENTION_DAYS, PULSE_EVENT_RETENTION_DAYS).
    job_retention_days = models.PositiveIntegerField(null=True, blank=True)
    execution_retention_days = models.PositiveIntegerField(null=True, blank=True)
    event_retention_days = models.PositiveIntegerField(null=True, blank=True)
    # The newest of the team's events the retention has deleted: a live client resuming from below
    # it missed events that are gone, and must reload instead of being told it has them all.
    events_pruned_to = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # Set by an operator's retirement (teams.services.team_retire): the team takes no new work
    # (jobs, schedules, tokens) and its history stays readable. Cleared by team_reactivate.
    retired_at = models.DateTimeField(null=True, blank=True)
    # Who retired it ("admin root", "operator"), kept after a reactivation for the next retirement's
    # overwrite; db_default: the processes of the release before insert teams without it.
    retired_by = models.CharField(max_length=200, blank=True, default="", db_default="")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_retired(self) -> bool:
        return self.retired_at is not None

    def retired_message(self) -> str:
        """The refusal every surface gives a retired team's new work, in one wording."""
        when = self.retired_at.strftime("%Y-%m-%d %H:%M UTC") if self.retired_at else ""
        by = f" by {self.retired_by}" if self.retired_by else ""
        return f"The team {self.name} was retired on {when}{by}: it takes no new jobs, schedules or tokens."

    def retention_days(self, kind: str) -> int:
        """The age in days past which finished `kind` ("job", "execution", "event") rows are pruned."""
        own = getattr(self, f"{kind}_retention_days")
        return own if own is not None else retention_default(kind)


RETENTION_KINDS = ("job", "execution", "event")
RETENTION_MAX_DAYS = 3650


def retention_default(kind: str) -> int:
    return int(getattr(settings, f"PULSE_{kind.upper()}_RETENTION_DAYS"))


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["team__name", "user__username"]
        constraints = [
            # Serves the middleware's lookup of (user, team) on every request as well.
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def can_write(self) -> bool:
        """Viewers read; every other role may submit, cancel and edit the team's work."""
        return self.role != self.Role.VIEWER

    @property
    def can_manage(self) -> bool:
        """Owners and admins manage members, tokens and limits."""
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class ApiToken(models.Model):
    class Access(models.TextChoices):
        READ = "read", "Read only"
        WRITE = "write", "Read and write"

    public_id = PublicIdField(prefix="TK")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    access = models.CharField(max_length=5, choices=Access.choices, default=Access.READ)
    # The secret is shown once; only its SHA-256 is kept (unique: the lookup on every API call).
    # A random 256-bit secret needs no slow hash: there is nothing to brute-force from the digest.
    prefix = models.CharField(max_length=16)
    secret_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The maker's username, kept when their user is deleted (created_by then empties); empty: made
    # by an operator's command.
    created_by_name = models.CharField(max_length=150, blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_active(self, now: object | None = None) -> bool:
        return self.inactive_reason(now) is None

    def inactive_reason(self, now: object | None = None) -> str | None:
        """Why the token no longer authenticates ("token revoked", "token expired", "its maker is
        deactivated", "its maker is deleted"), or None while it does. A person's token works while
        they are an active user: one deactivated in the admin is refused at once (and again when
        reactivated), as their sessions are. Leaving the team, or no longer managing it, revokes the tokens one made
        (teams.services)."""
        if self.revoked_at is not None:
            return "token revoked"
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):  # type: ignore[operator]
            return "token expired"
        if self.created_by_id is not None and not self.created_by.is_active:  # type: ignore[union-attr]
            return "its maker is deactivated"
        if self.created_by_id is None and self.created_by_name:
            return "its maker is deleted"
        return None

    def outlived_reason(self) -> str | None:
        """Why its maker may no longer make tokens in its team ("bob is no longer in the team",
        "bob is now member", "bob is deactivated", "bob's user is deleted"), or None: an operator's
        token, or a maker who still manages the team. Reads `maker_role` where the selectors
        that list tokens annotated it (teams.selectors.tokens_for_team), else asks."""
        if self.created_by_id is None:
            return f"{self.created_by_name}'s user is deleted" if self.created_by_name else None
        name = self.created_by.get_username()  # type: ignore[union-attr]
        if not self.created_by.is_active:  # type: ignore[union-attr]
            return f"{name} is deactivated"
        role = getattr(self, "maker_role") if hasattr(self, "maker_role") else (
            Membership.objects.filter(team_id=self.team_id, user_id=self.created_by_id).values_list("role", flat=True).first())
        if role is None:
            return f"{name} is no longer in the team"
        if role not in (Membership.Role.OWNER, Membership.Role.ADMIN):
            return f"{name} is now {role}"
        return None

    @property
    def outlived_while_working(self) -> str | None:
        """outlived_reason for a token that still works, to be revoked (the team page's "revoke it",
        the API's `outlived`); None otherwise."""
        return self.outlived_reason() if self.is_active() else None

    @property
    def state(self) -> str:
        """The team page's word for it: active, revoked, expired, or maker deactivated."""
        reason = self.inactive_reason()
        return "active" if reason is None else _STATE_WORDS[reason]

    @property
    def can_write(self) -> bool:
        return self.access == self.Access.WRITE


_STATE_WORDS = {"token revoked": "revoked", "token expired": "expired", "its maker is deactivated": "maker deactivated",
                "its maker is deleted": "maker deleted"}


def user_display(user: User) -> str:
    return user.get_full_name() or user.get_username()
