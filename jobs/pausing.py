"""Pausing and resuming the queue. Running jobs finish; admission holds everything else with
reason `queue_paused` (jobs.gate) until the pause ends and the held jobs are released."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.handlers.registry import find_handler
from jobs.models import Job, QueuePause
from pulse_site.errors import Conflict, NotFound, PermissionDenied, ValidationError
from pulse_site.ids import looks_like_public_id
from pulse_site.live.services import event_emit
from pulse_site.teams.models import Membership, Team

Scope = QueuePause.Scope


def _pause_payload(pause: QueuePause) -> dict[str, object]:
    return {"id": pause.public_id, "scope": pause.scope, "handler": pause.handler or None,
            "reason": pause.reason, "by": pause.paused_by, "since": pause.created_at.isoformat(),
            "ended_at": pause.ended_at.isoformat() if pause.ended_at else None, "ended_by": pause.ended_by or None}


def _teams_told(pause: QueuePause) -> list[int]:
    """Whose dashboards show this pause's banner: the team's own, or every team's for an operator's
    pause (rare, so one event per team is cheap, and a team with nothing running sees it live too)."""
    if pause.scope == Scope.TEAM:
        return [pause.team_id] if pause.team_id else []
    return list(Team.objects.values_list("pk", flat=True).order_by("pk"))


def _teams_holding(pause: QueuePause) -> list[int]:
    """The teams with jobs a pause holds, whose held jobs go back through admission at resume."""
    if pause.scope == Scope.TEAM:
        return [pause.team_id] if pause.team_id else []
    return list(Job.objects.filter(status=Job.Status.PAUSED, hold_reasons__0__kind="queue_paused")
                .values_list("team_id", flat=True).distinct().order_by())


def _emit(pause: QueuePause, kind: str) -> None:
    for team_id in _teams_told(pause):
        event_emit(team=team_id, kind=f"queue.{kind}", subject=pause.public_id, payload=_pause_payload(pause))


def _require_manager(by: Membership | None) -> None:
    if by is not None and not by.can_manage:
        raise PermissionDenied("Only owners and admins pause or resume the team's queue.")


def queue_pause_validate(*, scope: str, reason: str, team: Team | None = None, handler: str = ""
                         ) -> tuple[Team | None, str, str]:
    """The pause's team, handler and reason as it keeps them (a team or handler that is not its
    scope's is dropped), for queue_pause and forms that check first (the admin's); ValidationError
    naming the bad field."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError.for_field("reason", "Say why, so that the team knows when it may resume.")
    if len(reason) > 500:
        raise ValidationError.for_field("reason", "At most 500 characters.")
    if scope == Scope.TEAM and team is None:
        raise ValidationError.for_field("team", "A team pause needs the team.")
    handler = (handler or "").strip() if scope == Scope.HANDLER else ""
    if scope == Scope.HANDLER and not handler:
        raise ValidationError.for_field("handler", "A handler pause needs the handler's name.")
    if handler and find_handler(handler) is None:
        # A typo would pause nothing while the operator believes the handler paused.
        raise ValidationError.for_field("handler", f"Unknown handler {handler!r}.")
    if scope not in Scope.values:
        raise ValidationError.for_field("scope", "One of team, handler, global.")
    return (team if scope == Scope.TEAM else None), handler, reason


def queue_pause(*, scope: str, reason: str, by: str, team: Team | None = None, handler: str = "",
                member: Membership | None = None) -> QueuePause:
    """Pause a team's queue (`member` is the owner or admin acting; None for operators), one
    handler's everywhere, or every team's. Pausing what is already paused is a 409."""
    _require_manager(member)
    team, handler, reason = queue_pause_validate(scope=scope, reason=reason, team=team, handler=handler)
    pause = QueuePause(scope=scope, team=team, handler=handler, reason=reason, paused_by=by[:150])
    try:
        with transaction.atomic():
            pause.save()
            _emit(pause, "paused")
    except IntegrityError:
        raise Conflict("This queue is already paused; resume it first.", code="queue_already_paused") from None
    return pause


def queue_resume(*, pause: QueuePause, by: str, member: Membership | None = None) -> QueuePause:
    """End the pause; the jobs it held go back through admission at once."""
    _require_manager(member)
    with transaction.atomic():
        ended = QueuePause.objects.filter(pk=pause.pk, ended_at__isnull=True).update(
            ended_at=timezone.now(), ended_by=by[:150])
        if not ended:
            raise Conflict("This pause has already ended.", code="queue_not_paused")
        pause.refresh_from_db()
        teams = _teams_holding(pause)
        _emit(pause, "resumed")
    from jobs.services import job_release_held

    for team_id in teams:
        job_release_held(team_id=team_id)
    return pause


def queue_team_resume(*, team: Team, by: str, member: Membership | None = None) -> QueuePause:
    """End the team's own pause (queue_resume); a queue that it has not paused is a 409 (the queue
    page offers Resume by the same: queue_team_pause)."""
    own = queue_team_pause(team=team)
    if own is None:
        operators = queue_pauses_for_team(team=team)
        if not operators:
            raise Conflict("The team's queue is not paused.", code="queue_not_paused")
        holds = "; ".join(f"{_scope_words(pause)}: {pause.reason}" for pause in operators)
        raise Conflict(f"The team has not paused its queue; an operator's pause holds it ({holds}), "
                       "which only operators end.", code="queue_not_paused")
    return queue_resume(pause=own, by=by, member=member)


def _scope_words(pause: QueuePause) -> str:
    return "every team" if pause.scope == Scope.GLOBAL else f"the handler {pause.handler}"


# --- reads ---------------------------------------------------------------------------------------


def queue_pauses_for_team(*, team: Team) -> list[QueuePause]:
    """The pauses in force that hold this team's jobs (its own, a handler's, every team's)."""
    return list(
        QueuePause.objects.filter(ended_at__isnull=True)
        .filter(Q(scope=Scope.TEAM, team=team) | Q(scope__in=[Scope.HANDLER, Scope.GLOBAL]))
        .order_by("created_at")
    )


def queue_team_pause(*, team: Team) -> QueuePause | None:
    """The team's own pause in force, which its admins can end."""
    return QueuePause.objects.filter(scope=Scope.TEAM, team=team, ended_at__isnull=True).first()


def queue_pause_history(*, team: Team, limit: int = 20) -> list[QueuePause]:
    return list(QueuePause.objects.filter(scope=Scope.TEAM, team=team).order_by("-id")[:limit])


def queue_pause_get_for_team(*, team: Team, pause_id: str) -> QueuePause:
    """The team's own pause with that id, or 404 (also for another team's, and operators')."""
    pause = (QueuePause.objects.filter(scope=Scope.TEAM, team=team, public_id=pause_id).first()
             if looks_like_public_id(pause_id, "QP") else None)
    if pause is None:
        raise NotFound("No such pause in this team.")
    return pause


def queue_pause_as_dict(pause: QueuePause) -> dict[str, object]:
    return _pause_payload(pause)
