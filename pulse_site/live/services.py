"""Writing to the outbox, and telling live sockets to go away.

`event_emit` must be called inside the transaction that makes the change it describes, so an
event exists exactly when its change committed.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from pulse_site.live.models import Event
from pulse_site.teams.models import Team

log = logging.getLogger("pulse.live")


def team_group(team_id: int) -> str:
    return f"team.{team_id}"


def member_group(*, user_id: int, team_id: int) -> str:
    return f"member.{user_id}.{team_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def token_group(token_id: int) -> str:
    return f"token.{token_id}"


# The reason a session's sockets are closed with when it switches team, and a page's socket refused
# with when its page was drawn for another team than the session's pages show now (live.js keeps
# the page as drawn, saying so: its redraws would fetch the new team's rows into it).
TEAM_SWITCHED = "team switched"
# Why a socket is refused that names a team (the page's, or the session's) its user is not in:
# removed from it while the page was open, or never in it.
NOT_IN_TEAM = "not in the team"
# The reason a member's sockets are closed with when they are removed from the team.
MEMBERSHIP_REMOVED = "membership removed"
# The reason a session's sockets are closed with when it ends: signed out (in another tab), expired,
# its user deactivated or given another password.
SIGNED_OUT = "signed out"
# The reason a member's sockets are closed with when their role changes: what a socket is sent
# (pulse_site.live.selectors.Audience) and what the page offers follow the role (live.js reloads).
ROLE_CHANGED = "role changed"


def session_group(session_key: str) -> str:
    """A browser session's sockets (its tabs): they follow the team the session chose."""
    return f"session.{session_key}"


def event_emit(*, team: Team | int, kind: str, subject: str = "", payload: dict[str, Any] | None = None) -> Event:
    team_id = team if isinstance(team, int) else team.pk
    return Event.objects.create(team_id=team_id, kind=kind, subject=subject, payload=payload or {})


def sockets_close_on_commit(group: str, *, reason: str) -> None:
    """After the surrounding transaction commits, close every socket in `group`."""
    _send_on_commit(group, {"type": "access.revoked", "reason": reason})


def sockets_check_on_commit(group: str) -> None:
    """After the surrounding transaction commits, have every socket in `group` check the access it
    was opened with again, closing if it ended (pulse_site.teams.selectors.access_lost): for a
    change that may or may not end it, made where no service runs."""
    _send_on_commit(group, {"type": "access.check"})


def _send_on_commit(group: str, message: dict[str, str]) -> None:
    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # the layer being down must not fail the change itself
            log.exception("could not notify sockets in %s", group)

    transaction.on_commit(send)


# A user's fields that a session's access depends on (django.contrib.auth.get_user's checks).
_ACCESS_FIELDS = frozenset({"is_active", "password"})


def user_saved(sender: Any, instance: Any, created: bool = False, update_fields: Any = None, **kwargs: Any) -> None:
    """post_save of the user model: a user deactivated or given a password in admin, a shell or
    `manage.py changepassword` (no service of ours runs) has their sockets check their access at
    once, instead of going on until the next catch-up round. A save of other fields (a login's
    last_login) sends nothing, nor a new user's (no socket yet)."""
    if created:
        return
    if update_fields is None or _ACCESS_FIELDS & set(update_fields):
        sockets_check_on_commit(user_group(instance.pk))
