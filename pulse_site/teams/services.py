"""Teams, memberships and API tokens: every write goes through here."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from pulse_site.errors import Conflict, FieldErrors, NotFound, PermissionDenied, ValidationError
from pulse_site.live.services import (
    MEMBERSHIP_REMOVED,
    ROLE_CHANGED,
    event_emit,
    member_group,
    sockets_close_on_commit,
    team_group,
    token_group,
    user_group,
)
from pulse_site.locks import lock_key, transaction_lock
from pulse_site.teams.models import (
    RETENTION_KINDS,
    RETENTION_MAX_DAYS,
    ApiToken,
    Membership,
    Team,
    validate_time_zone,
)
from pulse_site.teams.selectors import tokens_outliving_makers
from pulse_site.throttling import bad_token_count, bad_tokens_refuse

TOKEN_PREFIX = "pulse_"
Role = Membership.Role


def _validate_time_zone(value: str) -> None:
    from django.core.exceptions import ValidationError as DjangoValidationError

    try:
        validate_time_zone(value)
    except DjangoValidationError as exc:
        raise ValidationError.for_field("time_zone", exc.messages[0]) from None


@transaction.atomic
def team_create(*, name: str, slug: str = "", time_zone: str = "UTC", owner: User | None = None) -> Team:
    name = _team_name(name)
    slug = slugify(slug or name)[:50]
    if not slug:
        raise ValidationError.for_field("slug", "Use letters, digits or hyphens.")
    _validate_time_zone(time_zone)
    if Team.objects.filter(slug=slug).exists():
        raise Conflict(f"A team with the slug '{slug}' exists already.", fields={"slug": ["Already taken."]})
    try:
        with transaction.atomic():
            team = Team.objects.create(name=name, slug=slug, time_zone=time_zone)
    except IntegrityError:
        raise Conflict(f"A team with the slug '{slug}' exists already.", fields={"slug": ["Already taken."]}) from None
    event_emit(team=team, kind="team.created", subject=team.public_id, payload={"name": name})
    if owner is not None:
        membership_add(team=team, user=owner, role=Role.OWNER, by=None)
    return team


def _team_name(value: object) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise ValidationError.for_field("name", "A team needs a name.")
    if len(name) > 100:
        raise ValidationError.for_field("name", "At most 100 characters.")
    return name


def _require_manager(by: Membership | None, *, role: str | None = None, target: Membership | None = None) -> None:
    """Owners and admins manage members; only owners grant, change or remove the owner role."""
    if by is None:  # operators and management commands
        return
    if not by.can_manage:
        raise PermissionDenied("Only owners and admins manage members and tokens.")
    touches_owner = role == Role.OWNER or (target is not None and target.role == Role.OWNER)
    if touches_owner and by.role != Role.OWNER:
        raise PermissionDenied("Only an owner can grant, change or remove the owner role.")


def _retention_value(value: object, *, field: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None  # back to the deployment's default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= RETENTION_MAX_DAYS:
        raise ValidationError.for_field(field, f"A whole number of days from 1 to {RETENTION_MAX_DAYS}, "
                                               "or empty for the default.")
    return value


RETENTION_FIELDS = tuple(f"{kind}_retention_days" for kind in RETENTION_KINDS)
PROFILE_FIELDS = ("name", "time_zone")


def team_validate(*, changes: dict[str, object]) -> dict[str, object]:
    """The cleaned values of the team settings in `changes`, for forms that check before saving
    (the admin's); a ValidationError naming each bad field. The update runs it itself."""
    errors = FieldErrors()
    for name in sorted(set(changes) - {*PROFILE_FIELDS, *RETENTION_FIELDS}):
        errors.add_reason(name, "Not a team setting.")
    values: dict[str, object] = {}
    for name in RETENTION_FIELDS:
        if name in changes:
            with errors.collect():
                values[name] = _retention_value(changes[name], field=name)
    if "name" in changes:
        with errors.collect():
            values["name"] = _team_name(changes["name"])
    if "time_zone" in changes:
        zone = changes["time_zone"]
        with errors.collect():
            _validate_time_zone(zone if isinstance(zone, str) else "")
            values["time_zone"] = zone
    errors.raise_any()
    return values


@transaction.atomic
def team_update(*, team: Team, changes: dict[str, object], by: Membership | None, who: str = "") -> Team:
    """Change some of the team's settings: its `name` and `time_zone` (the default zone of new
    schedules and of the budget's windows when the budget sets none), and its retention ages
    (`job_retention_days`, `execution_retention_days`, `event_retention_days`; None or "" goes
    back to the default). Owners and admins only (`by`), or an operator (`who` names them). One
    event per kind of change: `team.changed`, `team.retention`."""
    if by is not None and not by.can_manage:
        raise PermissionDenied("Only owners and admins change the team's settings.")
    values = team_validate(changes=changes)
    team = Team.objects.select_for_update().get(pk=team.pk)
    changed = {name: value for name, value in values.items() if getattr(team, name) != value}
    if not changed:
        return team
    before = {name: getattr(team, name) for name in changed}
    Team.objects.filter(pk=team.pk).update(**changed)
    for name, value in changed.items():
        setattr(team, name, value)
    who = by.user.get_username() if by is not None else who or "operator"
    for kind, fields in (("team.changed", PROFILE_FIELDS), ("team.retention", RETENTION_FIELDS)):
        names = [name for name in fields if name in changed]
        if names:
            event_emit(team=team, kind=kind, subject=team.public_id, payload={
                "by": who, "before": {n: before[n] for n in names}, "after": {n: changed[n] for n in names}})
    if "time_zone" in changed:
        # A budget without a zone of its own keeps its windows in the team's: a job held until
        # the old zone's reset may be let through by the new zone's now.
        transaction.on_commit(lambda: _release_held(team.pk))
    return team


def _release_held(team_id: int) -> None:
    from jobs.services import job_release_held  # jobs depends on teams, not the other way

    job_release_held(team_id=team_id, after_change=True)


def _validate_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationError.for_field("role", f"'{role}' is not a role; choose one of {', '.join(Role.values)}.")


def _member_payload(membership: Membership, by: Membership | None, who: str = "") -> dict[str, object]:
    return {"username": membership.user.get_username(), "role": membership.role, "by": who or member_name(by)}


def member_name(by: Membership | None) -> str:
    """Who made a change, for its event: the member's name; empty for an operator's command."""
    return by.user.get_username() if by is not None else ""


@transaction.atomic
def membership_add(*, team: Team, user: User, role: str, by: Membership | None) -> Membership:
    _validate_role(role)
    _require_manager(by, role=role)
    if Membership.objects.filter(team=team, user=user).exists():
        raise Conflict(f"{user.get_username()} is already in {team.name}.", fields={"username": ["Already a member."]})
    membership = Membership.objects.create(team=team, user=user, role=role)
    event_emit(team=team, kind="member.added", subject=str(user.pk), payload=_member_payload(membership, by))
    return membership


def membership_add_by_username(*, team: Team, username: str, role: str, by: Membership | None) -> Membership:
    user = get_user_model().objects.filter(username=(username or "").strip()).first()
    if user is None:
        raise ValidationError.for_field("username", f"No user is called '{username}'.")
    return membership_add(team=team, user=user, role=role, by=by)


def user_create(*, username: str, password: str, email: str = "") -> User:
    """A new user with a password that passes the configured validators."""
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError as DjangoValidationError

    User = get_user_model()
    username = (username or "").strip()
    try:
        User._meta.get_field("username").run_validators(username)
    except DjangoValidationError as exc:
        raise ValidationError.for_field("username", " ".join(exc.messages)) from None
    if not username:
        raise ValidationError.for_field("username", "A user needs a username.")
    if User.objects.filter(username=username).exists():
        raise Conflict(f"A user called '{username}' exists already.", fields={"username": ["Already taken."]})
    try:
        validate_password(password, User(username=username, email=email))
    except DjangoValidationError as exc:
        raise ValidationError.for_field("password", " ".join(exc.messages)) from None
    return User.objects.create_user(username=username, email=email, password=password)


@transaction.atomic
def user_password_change(*, user: User, old_password: str, new_password: str) -> None:
    """Set a new password after checking the old one. Every other session of the user ends (Django
    checks each session's password hash on its next request) and every open WebSocket of the user
    is closed now; the caller keeps its own session with update_session_auth_hash."""
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError as DjangoValidationError

    if not user.check_password(old_password):
        raise ValidationError.for_field("old_password", "This is not your current password.")
    try:
        validate_password(new_password, user)
    except DjangoValidationError as exc:
        raise ValidationError.for_field("new_password", " ".join(exc.messages)) from None
    # Told first: the save has the user's sockets check their access as well (live.services.user_saved),
    # which would close them as merely signed out.
    sockets_close_on_commit(user_group(user.pk), reason="password changed")
    user.set_password(new_password)
    user.save(update_fields=["password"])


@transaction.atomic
def membership_add_new_user(*, team: Team, username: str, password: str, role: str, by: Membership | None) -> Membership:
    """Create the user and their membership together: a refused role leaves no user behind."""
    _validate_role(role)
    user = user_create(username=username, password=password)
    return membership_add(team=team, user=user, role=role, by=by)


def _ensure_an_owner_remains(membership: Membership) -> None:
    others = Membership.objects.filter(team_id=membership.team_id, role=Role.OWNER).exclude(pk=membership.pk)
    if membership.role == Role.OWNER and not others.exists():
        raise Conflict("A team must keep at least one owner.", fields={"role": ["This is the last owner."]})


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str, by: Membership | None, who: str = "") -> Membership:
    """`who` names a staff member acting (`by` None) in the event, as a member's name is."""
    _validate_role(role)
    # Lock the team's owner rows so two concurrent demotions cannot both see "another owner".
    list(Membership.objects.select_for_update().filter(team_id=membership.team_id, role=Role.OWNER).order_by("pk"))
    membership.refresh_from_db()
    _require_manager(by, role=role, target=membership)
    if role != Role.OWNER:
        _ensure_an_owner_remains(membership)
    changed = membership.role != role
    membership.role = role
    membership.save(update_fields=["role"])
    event_emit(team=membership.team_id, kind="member.changed", subject=str(membership.user_id),
               payload=_member_payload(membership, by, who))
    if changed:
        sockets_close_on_commit(member_group(user_id=membership.user_id, team_id=membership.team_id),
                                reason=ROLE_CHANGED)
        if not membership.can_manage:
            _revoke_tokens_made_by(membership, who=who or member_name(by),
                                   why=f"{membership.user.get_username()} is now {role}")
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, by: Membership | None, who: str = "") -> None:
    list(Membership.objects.select_for_update().filter(team_id=membership.team_id, role=Role.OWNER).order_by("pk"))
    _require_manager(by, target=membership)
    _ensure_an_owner_remains(membership)
    event_emit(team=membership.team_id, kind="member.removed", subject=str(membership.user_id),
               payload=_member_payload(membership, by, who))
    sockets_close_on_commit(member_group(user_id=membership.user_id, team_id=membership.team_id),
                            reason=MEMBERSHIP_REMOVED)
    why = f"{membership.user.get_username()} was removed from the team"
    _revoke_tokens_made_by(membership, who=who or member_name(by), why=why)
    _stop_notifying(membership, who=who or member_name(by), why=why)
    membership.delete()


def _stop_notifying(membership: Membership, *, who: str, why: str) -> None:
    # notifications depends on teams, not the other way (as jobs, in _release_held).
    from pulse_site.notifications.services import targets_disable_for_departed

    targets_disable_for_departed(team_id=membership.team_id, email=membership.user.email, who=who, why=why)


# --- API tokens ------------------------------------------------------------------------------


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@transaction.atomic
def token_create(
    *,
    team: Team,
    name: str,
    access: str,
    expires_at: datetime | None,
    by: Membership | None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is never stored nor shown again. A
    retired team's is refused: 409 `team_retired` (team_work_refusal)."""
    _require_manager(by)
    team_check_takes_work(team=team)
    name = (name or "").strip()
    if not name:
        raise ValidationError.for_field("name", "A token needs a name.")
    if len(name) > 100:
        raise ValidationError.for_field("name", "At most 100 characters.")
    if access not in ApiToken.Access.values:
        raise ValidationError.for_field("access", "Choose 'read' or 'write'.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError.for_field("expires_at", "The expiry must be in the future.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        team=team,
        name=name,
        access=access,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        secret_hash=token_hash(secret),
        created_by=by.user if by else None,
        created_by_name=by.user.get_username() if by else "",
        expires_at=expires_at,
    )
    event_emit(team=team, kind="token.created", subject=token.public_id,
               payload={"name": name, "access": access, "prefix": token.prefix, "by": member_name(by)})
    return token, secret


def token_revoke_refusal(token: ApiToken) -> Conflict | None:
    """Why token_revoke would refuse `token`, or None when it would revoke it (the team page
    offers "Revoke" by this)."""
    if token.revoked_at is not None:
        return Conflict(f"The token “{token.name}” is already revoked.", code="token_revoked")
    return None


@transaction.atomic
def token_revoke(*, token: ApiToken, by: Membership | None, who: str = "") -> ApiToken:
    """Revoke the token now: it stops working at once. One revoked before (also by another at the
    same moment: the revocation is a claim) is refused, 409 `token_revoked`."""
    _require_manager(by)
    revoked = _revoke(token, who=who or member_name(by))
    token.refresh_from_db()
    if not revoked and (refusal := token_revoke_refusal(token)) is not None:
        raise refusal
    return token


def _revoke(token: ApiToken, *, who: str, why: str = "") -> bool:
    """Revoke one token (a claim: only the first of two revocations records it) and close its
    sockets; whether this call revoked it."""
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if updated:
        payload = {"name": token.name, "by": who, **({"why": why} if why else {})}
        event_emit(team=token.team_id, kind="token.revoked", subject=token.public_id, payload=payload)
        sockets_close_on_commit(token_group(token.pk), reason="token revoked")
    return bool(updated)


def _revoke_tokens_made_by(membership: Membership, *, who: str, why: str) -> None:
    """A token's secret was shown once, to its maker: when they leave the team or stop managing it,
    the tokens they made are revoked with them, so nobody keeps the team's access in a secret they
    copied. Tokens made by an operator (no maker) or by anyone else stay."""
    tokens = ApiToken.objects.filter(team_id=membership.team_id, created_by_id=membership.user_id,
                                     revoked_at__isnull=True).order_by("pk")
    for token in tokens:
        _revoke(token, who=who, why=why)


@transaction.atomic
def tokens_revoke_outliving_makers(*, team: Team | None = None, who: str = "operator") -> list[tuple[ApiToken, str]]:
    """Revoke the tokens (of `team`, else of every team) whose maker may no longer make tokens
    there, as removing or demoting the maker does now (each event says why, its sockets close);
    those this call revoked, with why. For tokens made before that rule, and makers gone some
    other way (deactivated, deleted): a second run finds none."""
    return [(token, why) for token, why in tokens_outliving_makers(team=team) if _revoke(token, who=who, why=why)]


LAST_USED_RESOLUTION_SECONDS = 60


def token_authenticate(secret: str, *, address: str | None = None) -> ApiToken | None:
    """The active token for `secret`, or None. Marks it used at most once a minute.

    From a client at `address` (an API call's, a socket's) guessing is bounded: an address past
    its bad-token rate is refused (RateExceeded) before the lookup, and a secret that is no
    token's counts against it (pulse_site.throttling; a revoked or expired token's is a client's
    mistake, not a guess, and is not counted)."""
    if address is not None:
        bad_tokens_refuse(address)
    token = None
    if secret and secret.startswith(TOKEN_PREFIX) and len(secret) <= 200:
        token = ApiToken.objects.select_related("team", "created_by").filter(secret_hash=token_hash(secret)).first()
    if token is None and address is not None:
        bad_token_count(address)
    now = timezone.now()
    if token is None or not token.is_active(now):
        return None
    stale = token.last_used_at is None or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS
    if stale:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# --- Retirement ------------------------------------------------------------------------------

TEAM_RETIRED = "team retired"


def _retire_lock(team_id: int) -> str:
    return f"team.retire.{team_id}"


def team_retired_error(team: Team) -> Conflict:
    message = team.retired_message()
    return Conflict(message, code="team_retired", fields={"team": [message]})


def teams_refusing_work(*, team_ids: Iterable[int], wait: bool = True) -> dict[int, Conflict]:
    """Of `team_ids`, the retired ones with their refusal. Called in the transaction that writes
    their new work (a job, a schedule, a token), it takes each team's retirement lock shared: a
    retirement under way waits for that transaction to commit, and its sweep then finds the work
    and cancels it; a transaction coming after the retirement took the lock waits for it to commit,
    and reads the flag here. So no work lands in a retired team after its sweep. (SQLite: writers
    are serialized by the IMMEDIATE transaction already.)

    The lock is taken before any row lock of the transaction: a retirement takes it, then the
    team's schedules and jobs, and a caller holding one of those rows while waiting for the lock
    would deadlock with it. `wait=False` reads the flag only, for the ticker firing schedules it
    holds locked: the retirement pauses those schedules (waiting for the ticker's commit) before
    it sweeps the jobs, so it finds the ticker's jobs all the same."""
    ids = sorted(set(team_ids))  # one order for every caller's locks
    if wait and connection.vendor == "postgresql":
        assert connection.in_atomic_block, "a transaction lock needs a transaction"
        # The locks and the flags in one round trip (teams/migrations/0007): a submit pays it.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pulse_retired_after_lock(%s::bigint[], %s::bigint[])",
                           [[lock_key(_retire_lock(team_id)) for team_id in ids], ids])
            retired_ids = [row[0] for row in cursor.fetchall()]
        if not retired_ids:
            return {}
        ids = retired_ids
    retired = Team.objects.filter(pk__in=ids, retired_at__isnull=False).only("name", "retired_at", "retired_by")
    return {team.pk: team_retired_error(team) for team in retired}


def team_work_refusal(team: Team | int, *, wait: bool = False) -> Conflict | None:
    """Why `team` takes no new work (a job, a schedule, a token), or None when it takes it: a
    retired team's refusal, 409 `team_retired` on the field `team`. Pages ask it without `wait`,
    to say these words where a form would be; the services ask it with `wait`, in the transaction
    that writes the work (teams_refusing_work says why, and when)."""
    team_id = team if isinstance(team, int) else team.pk
    return teams_refusing_work(team_ids=[team_id], wait=wait).get(team_id)


def team_check_takes_work(*, team: Team | int, wait: bool = True) -> None:
    """Raise team_work_refusal's refusal, if any."""
    if (refusal := team_work_refusal(team, wait=wait)) is not None:
        raise refusal


@dataclass
class Retirement:
    """What one team_retire did: `already` when the team was retired before this call (a second
    run finds nothing left to do, or finishes what a first left)."""

    team: Team
    already: bool
    tokens_revoked: int = 0
    schedules_paused: int = 0
    jobs_cancelled: int = 0  # queued or held
    running_told_to_stop: int = 0

    def counts(self) -> str:
        """"3 queued or held jobs cancelled, 1 running job told to stop, 2 schedules paused, 1 token
        revoked": what the admin and the command say it did, or (team_retire_preview) will do."""
        return ", ".join(f"{number} {noun if number == 1 else plural} {done}" for number, noun, plural, done in (
            (self.jobs_cancelled, "queued or held job", "queued or held jobs", "cancelled"),
            (self.running_told_to_stop, "running job", "running jobs", "told to stop"),
            (self.schedules_paused, "schedule", "schedules", "paused"),
            (self.tokens_revoked, "API token", "API tokens", "revoked")))


def team_retire_preview(*, team: Team) -> Retirement:
    """What team_retire would do now, done nothing (the admin's confirmation page)."""
    from jobs.models import Job
    from schedules.models import Schedule

    jobs = Job.objects.for_team(team)
    return Retirement(
        team=team, already=team.is_retired,
        tokens_revoked=ApiToken.objects.filter(team=team, revoked_at__isnull=True).count(),
        schedules_paused=Schedule.objects.for_team(team).filter(enabled=True).count(),
        jobs_cancelled=jobs.filter(status__in=(Job.Status.QUEUED, Job.Status.PAUSED)).count(),
        running_told_to_stop=jobs.filter(status=Job.Status.RUNNING, cancel_requested=False).count(),
    )


@transaction.atomic
def team_retire(*, team: Team, who: str) -> Retirement:
    """Wind the team down for good, keeping its history (jobs, attempts, logs, executions, ledger,
    events are readable as before, to staff in the admin and to members on the dashboard): the
    team is marked retired (when, `who`); its active API tokens are revoked (the token.revoked
    event says "team retired", their sockets close); its enabled schedules are paused with the
    reason "team retired"; its queued and held jobs are cancelled and its running ones told to stop
    (job_cancel, as the Cancel button: each job's event and page say `who: team retired`; a running
    handler sees cancelled() and its job ends cancelled, without a retry); the team's sockets close.
    From then on its new work is refused (team_check_takes_work). Idempotent: a second call sweeps
    again (nothing is left to do) and records no second retirement."""
    # jobs and schedules depend on teams, not the other way (as _release_held).
    from jobs.models import Job
    from jobs.services import job_cancel
    from schedules.models import Schedule
    from schedules.services import schedule_pause

    # Exclusive: waits for every submit of the team under way (teams_refusing_work) to commit, so
    # that the sweep below sees their jobs.
    transaction_lock(_retire_lock(team.pk))
    now = timezone.now()
    marked = Team.objects.filter(pk=team.pk, retired_at__isnull=True).update(retired_at=now, retired_by=who[:200])
    team.refresh_from_db()
    done = Retirement(team=team, already=not marked)
    if marked:
        event_emit(team=team, kind="team.retired", subject=team.public_id, payload={"by": who})
    for token in ApiToken.objects.filter(team=team, revoked_at__isnull=True).order_by("pk"):
        done.tokens_revoked += _revoke(token, who=who, why=TEAM_RETIRED)
    # Schedules before jobs: a ticker firing one of them holds its row until its jobs commit (not
    # waiting for the lock: teams_refusing_work), so the pause waits for it and the jobs' sweep
    # then finds its runs.
    for schedule in Schedule.objects.for_team(team).filter(enabled=True).order_by("pk"):
        schedule_pause(schedule=schedule, by=who, reason=TEAM_RETIRED)
        done.schedules_paused += 1
    by = f"{who}: {TEAM_RETIRED}"
    # Parents first, as a spawn locks them: a child is cancelled with its parent's tree. (Ids only:
    # job_cancel reads each job again under its lock.)
    for job_pk in list(Job.objects.for_team(team).filter(status__in=Job.ACTIVE).order_by("pk")
                       .values_list("pk", flat=True)):
        try:
            job_cancel(job=Job(pk=job_pk), by=by)
        except (Conflict, NotFound) as exc:
            if isinstance(exc, Conflict) and exc.code != "job_finished":
                raise  # else it ended (or went) since the list was read, or was cancelled with its parent
    # Counted once done, children cancelled with their parents included. Every row of them is locked
    # by this transaction until it commits: none has moved since.
    mine = Job.objects.for_team(team).filter(cancelled_by=by[:200], updated_at__gte=now)
    done.jobs_cancelled = mine.filter(status=Job.Status.CANCELLED).count()
    done.running_told_to_stop = mine.filter(status=Job.Status.RUNNING).count()
    sockets_close_on_commit(team_group(team.pk), reason=TEAM_RETIRED)
    return done


@transaction.atomic
def team_reactivate(*, team: Team, who: str) -> bool:
    """Take the team out of retirement: it takes new work again. What the retirement did stays done:
    its tokens stay revoked (make new ones), its schedules stay paused (a person resumes each,
    which clears "team retired" from its page), its cancelled jobs stay cancelled (retry them).
    Whether this call reactivated it (False: it was not retired)."""
    transaction_lock(_retire_lock(team.pk))
    updated = Team.objects.filter(pk=team.pk, retired_at__isnull=False).update(retired_at=None)
    team.refresh_from_db()
    if updated:
        event_emit(team=team, kind="team.reactivated", subject=team.public_id, payload={"by": who})
    return bool(updated)
