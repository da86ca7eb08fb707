"""`/ws/`: one team's live events, for the dashboard (session) and API clients (bearer token).

Frames sent: `hello` (team, last_id), `event` (an outbox row with its sequence id; the events about
API tokens only to the team's owners and admins, as live.selectors.Audience says), `synced`
(`to`: every event of the team up to that id has been sent on this socket, replayed or caught up:
where a client resumes from), `resync` (too much was missed, or some of it pruned by the retention:
reload), `pong`, `following` (the
job followed, or null), `error` (a bad client frame), `closed` (access ended, or a member's role
changed, with the reason, followed by close code 4403: told at once by the service that ended it,
by the team's own event of a member's removal or role change, or found by the next catch-up round; also sent when a browser's socket is refused at connecting:
"not in the team", "team switched"). Close codes: 4401 not authenticated, 4403 refused.

A browser page's socket names the team the page was drawn for, `?team=TM_…`, and gets that team or
is refused (_session_access): never another of its user's teams.

Resuming: a client reconnects with `?since=<the last synced.to>` and drops the events it already
has by id. Resuming from the last id seen instead can lose an event for good: the channel layer
may drop one (its subscription broken for a moment) and deliver later ones; the catch-up sends
the dropped one within CATCH_UP_SECONDS, but not to a socket that closed before then.

Frames received (at most MAX_FRAME_CHARS each): `ping`; `follow` {"job": "JB_…"} restricts this
socket's job.* events to that job of the team (every other kind still arrives; an id of no job of
the team is a not_found error and changes nothing); `unfollow` lifts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils import timezone

from pulse_site.errors import NotFound
from pulse_site.ids import looks_like_public_id
from pulse_site.live.selectors import Audience, event_last_id, events_by_id, events_relayed_after, events_since
from pulse_site.live.services import (
    MEMBERSHIP_REMOVED,
    NOT_IN_TEAM,
    ROLE_CHANGED,
    TEAM_SWITCHED,
    member_group,
    session_group,
    team_group,
    token_group,
    user_group,
)
from pulse_site.parsers import MAX_DEPTH, Refused, json_loads_strict
from pulse_site.teams.middleware import SESSION_TEAM_KEY
from pulse_site.teams.models import Team
from pulse_site.teams.selectors import access_lost, membership_get_for_user, membership_shown
from pulse_site.teams.services import token_authenticate
from pulse_site.throttling import RateExceeded

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
# Too many bad tokens from the socket's address (pulse_site.throttling.bad_tokens_refuse).
CLOSE_THROTTLED = 4429
REPLAY_LIMIT = 1_000
# Enough to cover a replay plus the live events that raced it; older ids cannot come again.
SENT_IDS_KEPT = 4_096
CATCH_UP_SECONDS = 5.0
# Far above any frame a client sends (a follow is under 100 characters); checked before parsing, which
# runs on the event loop: a megabyte of JSON held every socket of the process for over a second.
MAX_FRAME_CHARS = 4_096
NESTED_TOO_DEEP = f"Nested deeper than {MAX_DEPTH} levels."
log = logging.getLogger("pulse.live")


def origin_allowed(origin: str, host: str | None) -> bool:
    """An Origin is allowed when it is listed in PULSE_WS_ALLOWED_ORIGINS (as a full origin, e.g.
    https://app.example.com, or a host), or when it is the socket's own site: its host and port
    are the request's Host, which is one of ALLOWED_HOSTS (as Django's CSRF check asks of a form's
    Origin). The port counts: cookies do not, so a page served on another port of the same host
    would otherwise open a socket with the user's session."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    extra = settings.PULSE_WS_ALLOWED_ORIGINS
    if origin.rstrip("/") in extra:
        return True
    name, _ = split_domain_port(parts.netloc)
    if validate_host(name, extra):
        return True
    default_port = "443" if parts.scheme == "https" else "80"
    return (host is not None and _site(parts.netloc, default_port) == _site(host, default_port)
            and validate_host(name, settings.ALLOWED_HOSTS))


def _site(netloc: str, default_port: str) -> tuple[str, str]:
    name, port = split_domain_port(netloc.lower())
    return name, port or default_port


@dataclass(frozen=True)
class Access:
    team: Team
    groups: tuple[str, ...]
    expires_at: datetime | None = None  # a token's expiry: the socket is closed then
    # What the access was given by, checked again every catch-up round (access_lost).
    token_id: int | None = None
    session: tuple[str, int, str] | None = None  # (session key, user id, the member's role)
    # Which of the team's events it is sent, as of when it opened (a member's role change closes
    # the member's sockets: membership_set_role).
    audience: Audience = Audience(sees_tokens=False)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _token_access(secret: str, address: str) -> Access | None:
    """The access of a bearer token's socket from `address`; None for a bad token. Raises
    RateExceeded for an address past its bad-token rate (counted with the API's calls)."""
    token = token_authenticate(secret, address=address)
    if token is None:
        return None
    return Access(team=token.team, groups=(team_group(token.team_id), token_group(token.pk)),
                  expires_at=token.expires_at, token_id=token.pk, audience=Audience.of(membership=None, token=token))


def _session_access(scope: dict[str, Any], *, drawn_for: str | None) -> Access | str:
    """The access of a browser session's socket, or why it has none (a `closed` reason).

    A page's socket names the team the page was drawn for (`drawn_for`, from `?team=`); one that
    names none gets the team the session's pages show. Either way that team or nothing: never
    another of the user's teams, whose events the page would show as the drawn team's (and
    replay from the drawn team's ids). The team the session's pages show now, as TeamMiddleware
    finds it, is the rule: a page drawn for another was left behind by a switch in another tab,
    and its redraws would fetch the new team's rows into it, as its forms would act on it (409)."""
    user = scope["user"]
    shown, lost = membership_shown(user=user, team_public_id=scope["session"].get(SESSION_TEAM_KEY))
    if shown is None or lost or (drawn_for and drawn_for != shown.team.public_id):
        if not drawn_for:
            return NOT_IN_TEAM
        try:
            membership_get_for_user(user=user, team_public_id=drawn_for)
        except NotFound:
            return NOT_IN_TEAM
        return TEAM_SWITCHED
    team_id = shown.team_id
    groups: tuple[str, ...] = (team_group(team_id), member_group(user_id=user.pk, team_id=team_id), user_group(user.pk))
    key = scope["session"].session_key
    if key:
        groups = (*groups, session_group(key))
    return Access(team=shown.team, groups=groups, session=(key, user.pk, shown.role) if key else None,
                  audience=Audience.of(membership=shown))


def _ends_session_access(event: dict[str, Any], session: tuple[str, int, str] | None, *,
                         checked_at: int) -> str | None:
    """Why a live `event` ends the access of a session socket opened as `session` (its member removed,
    or given another role), else None: no query, a comparison per event. Only an event made after
    the socket's access was read counts (one replayed, or relayed late, may predate a re-adding)."""
    kind = event.get("kind")
    if session is None or kind not in ("member.removed", "member.changed") or int(event["id"]) <= checked_at:
        return None
    _, user_id, role = session
    if event.get("subject") != str(user_id):
        return None
    if kind == "member.removed":
        return MEMBERSHIP_REMOVED
    return ROLE_CHANGED if (event.get("payload") or {}).get("role") != role else None


def _job_exists(*, team: Team, job_id: str) -> bool:
    from jobs.selectors import job_get_for_team  # jobs emits through live: imported when used

    try:
        job_get_for_team(team=team, job_id=job_id)
    except NotFound:
        return False
    return True


async def close_lost(team_id: int, sockets: list[EventsConsumer]) -> list[EventsConsumer]:
    """Close those of the team's `sockets` whose access has ended (access_lost: three queries for
    them all), telling each why; the others."""
    if not sockets:
        return []
    lost_sessions, lost_tokens = await database_sync_to_async(access_lost)(
        team_id=team_id, sessions={s.access.session for s in sockets if s.access.session},
        token_ids={s.access.token_id for s in sockets if s.access.token_id is not None})
    kept = []
    for socket in sockets:
        access = socket.access
        reason = (lost_sessions.get(access.session) if access.session else None) or \
            (lost_tokens.get(access.token_id) if access.token_id is not None else None)
        if reason is None:
            kept.append(socket)
            continue
        with contextlib.suppress(Exception):  # closing already
            await socket.access_revoked({"reason": reason})
    return kept


class TeamCatchUp:
    """The catch-up of a team's open sockets in one process: a socket whose channel layer dropped
    events (a Redis restart drops the subscription for a moment while the socket stays open) gets
    them from the outbox, by comparing what it was sent with what the relay has forwarded.

    Each round also closes the sockets whose access has ended (access_lost: signed out in another
    tab, session expired, user deactivated, membership or token gone), whichever way it ended: the
    services that revoke access tell the sockets at once through the channel layer, but that message
    can be lost, and nothing tells them of a session deleted or a user changed in admin.

    One loop per team and event loop, shared by the team's sockets: five queries per team every
    CATCH_UP_SECONDS. One loop per socket made 500 sockets run 200 queries a second through the web
    process's one database thread, and a progress call took seconds instead of ~80 ms to arrive.
    """

    _running: dict[tuple[asyncio.AbstractEventLoop, int], TeamCatchUp] = {}

    def __init__(self, team_id: int) -> None:
        self.team_id = team_id
        self.sockets: set[EventsConsumer] = set()
        self.task = asyncio.ensure_future(self._forever())

    @classmethod
    def join(cls, socket: EventsConsumer) -> None:
        key = (asyncio.get_running_loop(), socket.access.team.pk)
        shared = cls._running.get(key)
        if shared is None or shared.task.done():
            shared = cls._running[key] = cls(key[1])
        shared.sockets.add(socket)

    @classmethod
    async def leave(cls, socket: EventsConsumer) -> None:
        access = getattr(socket, "access", None)
        if access is None:
            return
        key = (asyncio.get_running_loop(), access.team.pk)
        shared = cls._running.get(key)
        if shared is None:
            return
        shared.sockets.discard(socket)
        if not shared.sockets:
            del cls._running[key]
            shared.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shared.task

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(CATCH_UP_SECONDS)
            try:
                await self._round()
            except Exception:
                # The database away for a moment: the next round tries again.
                log.warning("live catch-up of team %s failed", self.team_id, exc_info=True)

    async def _close_lost(self, sockets: list[EventsConsumer]) -> list[EventsConsumer]:
        """Close the sockets whose access has ended; the others."""
        kept = await close_lost(self.team_id, sockets)
        self.sockets.difference_update(set(sockets) - set(kept))
        return kept

    async def _round(self) -> None:
        sockets = await self._close_lost(list(self.sockets))
        if not sockets:
            return
        cursor, ids = await database_sync_to_async(events_relayed_after)(
            team_id=self.team_id, after=min(s.synced_to for s in sockets), limit=REPLAY_LIMIT + 1)
        if len(ids) > REPLAY_LIMIT:
            cursor = ids[-1]  # complete up to there; the next round goes on from it
        news = {s: [i for i in ids if i > s.synced_to] for s in sockets}
        owed = {s: [i for i in news[s] if i not in s.sent_ids] for s in sockets}
        wanted = sorted({i for missed in owed.values() if len(missed) <= REPLAY_LIMIT for i in missed})
        events = {}
        if wanted:
            found = await database_sync_to_async(events_by_id)(team_id=self.team_id, ids=wanted)
            events = {event.id: event.as_message() for event in found}
        for socket, missed in owed.items():
            try:
                if len(missed) > REPLAY_LIMIT:
                    await socket.send_json({"type": "resync"})
                    continue
                for event_id in missed:
                    if event_id in events:
                        await socket._send_event(events[event_id])
                # Told only when the team had events in between: the relay's cursor moves with every
                # team's, and the client gains nothing from hearing of the others' (its replay
                # from an older id finds none of them).
                await socket._synced(cursor, tell=bool(news[socket]))
            except Exception:  # a socket closing under us; the others still get theirs
                # It is gone (its disconnect may never come, or come later): left out from now on,
                # not tried, and logged with a traceback, every round for as long as the process runs.
                self.sockets.discard(socket)
                log.warning("live catch-up of a socket failed; it is left out from now on", exc_info=True)


def _resume_point(raw: str, *, newest: int) -> int:
    """The id a reconnecting client's `?since=` replays after, from 0 to the team's `newest`; raises
    ValueError for text that is no whole number.

    Not refused past `newest`: a client's last synced.to may be the relay's cursor, which counts every
    team's events. But never taken as the socket's synced state: above every real id, each catch-up
    round would find nothing newer and nothing dropped would be re-sent. Clamping only widens the
    replay, and keeps a number past any bigint out of the query."""
    return max(0, min(int(raw), newest))


class EventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        # Accept before refusing so the client sees why (a close code); a refusal in the
        # handshake reaches browsers as a bare failure.
        await self.accept()
        self.joined: list[str] = []
        self.sent_ids: set[int] = set()
        self.sent_order: deque[int] = deque()
        self.following: str | None = None
        # Blank kept: `?since=` is a client's unset cursor, told as such, not taken for no since.
        self.query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        code = await self._authorize()
        if code is not None:
            await self.close(code=code)
            return
        for group in self.access.groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)
        await self._greet_and_replay()
        TeamCatchUp.join(self)
        if self.access.expires_at is not None:
            # An expired token is refused everywhere at once (a revoked one is told by its group).
            delay = max(0.0, (self.access.expires_at - timezone.now()).total_seconds())
            self.expiry = asyncio.get_running_loop().call_later(
                delay, lambda: asyncio.ensure_future(self.access_revoked({"reason": "token expired"})))

    async def _authorize(self) -> int | None:
        origin, host = _header(self.scope, b"origin"), _header(self.scope, b"host")
        authorization = _header(self.scope, b"authorization") or ""
        scheme, _, secret = authorization.partition(" ")
        # The team the client expects (a page's, `?team=`): that team's events or nothing.
        drawn_for = (self.query.get("team") or [""])[0].strip() or None
        if scheme.lower() == "bearer":
            # Token clients are not browsers and may omit Origin; a present one must still match.
            client = self.scope.get("client") or ("",)
            try:
                access = await database_sync_to_async(_token_access)(secret.strip(), str(client[0]))
            except RateExceeded as refusal:
                await self.send_json({"type": "closed", "reason": str(refusal.detail)})
                return CLOSE_THROTTLED
            if access is None:
                return CLOSE_UNAUTHENTICATED
            if origin is not None and not origin_allowed(origin, host):
                return CLOSE_FORBIDDEN
            if drawn_for is not None and drawn_for != access.team.public_id:
                return await self._refuse(NOT_IN_TEAM)
        else:
            user = self.scope.get("user")
            if user is None or not user.is_authenticated:
                return CLOSE_UNAUTHENTICATED
            # Cross-site WebSocket hijacking: the browser sends the session cookie to any site's socket.
            if origin is None or not origin_allowed(origin, host):
                return CLOSE_FORBIDDEN
            found = await database_sync_to_async(_session_access)(self.scope, drawn_for=drawn_for)
            if isinstance(found, str):
                return await self._refuse(found)
            access = found
        if access.team.is_retired:
            # Its history stays on the pages; nothing new happens in it to follow live.
            return await self._refuse("team retired")
        self.access = access
        return None

    async def _refuse(self, reason: str) -> int:
        """Tell a refused client why (the close code alone says only "refused")."""
        await self.send_json({"type": "closed", "reason": reason})
        return CLOSE_FORBIDDEN

    async def _greet_and_replay(self) -> None:
        team_id = self.access.team.pk
        last_id = await database_sync_to_async(event_last_id)(team_id=team_id)
        # What the page (or the replay below) already covers; the catch-up starts after it.
        self.synced_to = last_id
        self.checked_at = last_id  # the access was read after every event up to here was made
        await self.send_json({"type": "hello", "team": self.access.team.public_id, "last_id": last_id})
        raw = self.query.get("since")
        if raw is None:
            return
        try:
            since = _resume_point(raw[0], newest=last_id)
        except ValueError:
            await self._send_error("validation_error", "since must be a whole number (the last synced id).")
            await self.send_json({"type": "resync"})
            return
        missed, pruned = await database_sync_to_async(events_since)(team_id=team_id, since=since,
                                                                    limit=REPLAY_LIMIT + 1)
        if len(missed) > REPLAY_LIMIT or pruned:  # more missed than replayed, or some gone for good
            await self.send_json({"type": "resync"})
            return
        for event in missed:
            await self._send_event(event.as_message())
        # The replay read the outbox after last_id was read: everything up to it has been sent.
        await self.send_json({"type": "synced", "to": self.synced_to})

    async def _synced(self, upto: int, *, tell: bool) -> None:
        """Every event of the team up to `upto` has been sent on this socket: after a replay, and
        after a catch-up round. The client is told when it moved and the team had events."""
        if upto <= self.synced_to:
            return
        self.synced_to = upto
        if tell:
            await self.send_json({"type": "synced", "to": upto})

    async def _send_event(self, event: dict[str, Any]) -> None:
        if self.following is not None and str(event.get("kind", "")).startswith("job.") \
                and event.get("subject") != self.following:
            return
        event_id = int(event["id"])
        if event_id in self.sent_ids:
            return
        self.sent_ids.add(event_id)
        self.sent_order.append(event_id)
        if len(self.sent_order) > SENT_IDS_KEPT:
            self.sent_ids.discard(self.sent_order.popleft())
        # Live, replayed or caught up, every event comes this way. One this socket may not see
        # counts as sent all the same: the catch-up owes it nothing.
        if self.access.audience.sees(str(event.get("kind", ""))):
            await self.send_json({"type": "event", **event})

    async def _send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "error": {"code": code, "message": message}})

    async def disconnect(self, code: int) -> None:
        expiry = getattr(self, "expiry", None)
        if expiry is not None:
            expiry.cancel()
        await TeamCatchUp.leave(self)
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    # --- From the client ---------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if text_data is None:
            await self._send_error("parse_error", "Send JSON text frames.")
            return
        if len(text_data) > MAX_FRAME_CHARS:
            await self._send_error("frame_too_large", f"A frame may have at most {MAX_FRAME_CHARS} characters; "
                                                      f"this one has {len(text_data)}.")
            return
        try:
            # The API's own parser: nesting past its limit (which made json.loads raise RecursionError
            # and drop the socket) is refused like malformed JSON.
            content = json_loads_strict(text_data)
        except Refused as exc:
            if exc.reason == NESTED_TOO_DEEP:  # its path would be 64 indexes long
                await self._send_error("parse_error", f"The frame is nested deeper than {MAX_DEPTH} levels.")
            else:  # valid JSON with a NUL, a lone surrogate or NaN: where, and what
                await self._send_error("validation_error", f"{exc.field}: {exc.reason}")
            return
        except ValueError:
            await self._send_error("parse_error", "The frame is not valid JSON.")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "follow":
            await self._follow(content.get("job"))
        elif kind == "unfollow":
            self.following = None
            await self.send_json({"type": "following", "job": None})
        else:
            await self._send_error("unknown_message", 'Known messages: {"type": "ping"}, '
                                   '{"type": "follow", "job": "JB_…"}, {"type": "unfollow"}.')

    async def _follow(self, job: Any) -> None:
        if not isinstance(job, str) or not looks_like_public_id(job, "JB"):
            await self._send_error("validation_error", "follow needs a job id: {\"type\": \"follow\", \"job\": \"JB_…\"}.")
            return
        # Looked up (one indexed read) so a mistyped id is told, not followed into silence; another
        # team's id gets the same answer as one that never existed.
        if not await database_sync_to_async(_job_exists)(team=self.access.team, job_id=job):
            await self._send_error("not_found", "job: no such job in this team.")
            return
        self.following = job
        await self.send_json({"type": "following", "job": job})

    # --- From the channel layer --------------------------------------------------------------

    async def event_message(self, message: dict[str, Any]) -> None:
        event = message["event"]
        ended = _ends_session_access(event, self.access.session, checked_at=self.checked_at)
        if ended is not None:
            # The service's close message may be lost (the layer down a moment) or come after this
            # event: the team's next event stops here, not at the next catch-up round.
            await self.access_revoked({"reason": ended})
            return
        await self._send_event(event)

    async def access_check(self, message: dict[str, Any]) -> None:
        """Something this socket's access depends on changed (live.services.sockets_check_on_commit)."""
        # Closed already (a password change tells its reason, then its save asks for this check).
        if getattr(self, "access", None) is not None and not getattr(self, "closing", False):
            await close_lost(self.access.team.pk, [self])

    async def access_revoked(self, message: dict[str, Any]) -> None:
        self.closing = True
        await self.send_json({"type": "closed", "reason": message.get("reason", "access revoked")})
        await self.close(code=CLOSE_FORBIDDEN)
