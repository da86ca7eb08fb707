"""Teams, memberships and API tokens: every write goes through here."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from pulse_site.errors import Conflict, FieldErrors, PermissionDenied, ValidationError
from pulse_site.live.services import (
    MEMBERSHIP_REMOVED,
    ROLE_CHANGED,
    event_emit,
    member_group,
    sockets_close_on_commit,
    token_group,
    user_group,
)
from pulse_site.teams.models import (
    RETENTION_KINDS,
    RETENTION_MAX_DAYS,
    ApiToken,
    Membership,
    Team,
    validate_time_zone,
)
from pulse_site.teams.selectors import tokens_outliving_makers

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
    """Create a token and return it with its secret, which is never stored nor shown again."""
    _require_manager(by)
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


@transaction.atomic
def token_revoke(*, token: ApiToken, by: Membership | None, who: str = "") -> ApiToken:
    _require_manager(by)
    _revoke(token, who=who or member_name(by))
    token.refresh_from_db()
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


def token_authenticate(secret: str) -> ApiToken | None:
    """The active token for `secret`, or None. Marks it used at most once a minute."""
    if not secret or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = ApiToken.objects.select_related("team", "created_by").filter(secret_hash=token_hash(secret)).first()
    now = timezone.now()
    if token is None or not token.is_active(now):
        return None
    stale = token.last_used_at is None or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS
    if stale:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
