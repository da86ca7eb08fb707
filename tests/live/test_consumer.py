from __future__ import annotations

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from pulse_site.asgi import PulseASGI, channels_app
from pulse_site.live.models import Event
from pulse_site.live.relay import relay_batch
from pulse_site.live.services import event_emit
from pulse_site.teams.models import ApiToken, Membership
from pulse_site.teams.services import membership_remove, token_create, token_revoke
from tests.live.conftest import (
    bearer_headers,
    close_code,
    closed_with,
    cookie_headers,
    open_socket,
    session_headers,
    still_open,
)

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async
relay = database_sync_to_async(relay_batch)


async def emit(team, kind: str = "job.updated", subject: str = "") -> Event:
    return await db(event_emit)(team=team, kind=kind, subject=subject)


async def last_id(team) -> int:
    return await db(lambda: Event.objects.filter(team=team).order_by("-id").values_list("id", flat=True).first())()


async def hello(socket) -> dict:
    frame = await socket.receive_json_from(timeout=5)
    assert frame["type"] == "hello"
    return frame


async def next_event_id(socket) -> int:
    frame = await socket.receive_json_from(timeout=5)
    assert frame["type"] == "event"
    return frame["id"]


def new_token(team, access: str = "read") -> str:
    return token_create(team=team, name="live", access=access, expires_at=None, by=None)[1]


# --- Who may connect -------------------------------------------------------------------------


async def test_an_anonymous_socket_is_closed_with_4401(acme):
    socket = await open_socket([(b"origin", b"http://testserver")])
    assert await close_code(socket) == 4401


async def test_an_unknown_token_is_closed_with_4401(acme):
    socket = await open_socket(bearer_headers("pulse_" + "x" * 43))
    assert await close_code(socket) == 4401


async def test_a_revoked_token_cannot_connect(acme):
    token, secret = await db(token_create)(team=acme, name="old", access="read", expires_at=None, by=None)
    await db(token_revoke)(token=token, by=None)
    socket = await open_socket(bearer_headers(secret))
    assert await close_code(socket) == 4401


async def test_a_browser_socket_from_another_origin_is_closed_with_4403(alice, acme):
    headers = await db(session_headers)(alice, origin="https://evil.example")
    socket = await open_socket(headers)
    assert await close_code(socket) == 4403


@pytest.mark.parametrize(("origin", "host", "code"), [
    ("http://testserver:9999", "testserver", 4403),  # another port of the same host: cookies do not tell
    ("http://testserver", "testserver:9999", 4403),
    ("https://testserver", "testserver:8443", 4403),
    ("http://testserver:8000", "testserver:8000", None),
    ("https://testserver", "testserver:443", None),  # the default port, said or not
    ("http://TestServer", "testserver", None),
])
async def test_a_browser_socket_must_come_from_its_own_host_and_port(alice, acme, origin, host, code):
    headers = await db(session_headers)(alice, origin=origin)
    socket = await open_socket([*headers, (b"host", host.encode())])
    if code is None:
        assert (await hello(socket))["team"] == acme.public_id
        await socket.disconnect()
    else:
        assert await close_code(socket) == code


async def test_a_browser_socket_without_an_origin_is_refused(alice, acme):
    headers = await db(session_headers)(alice, origin=None)
    socket = await open_socket(headers)
    assert await close_code(socket) == 4403


async def test_an_origin_listed_in_the_setting_is_allowed(alice, acme, settings):
    settings.PULSE_WS_ALLOWED_ORIGINS = ["https://pulse.example.com"]
    headers = await db(session_headers)(alice, origin="https://pulse.example.com")
    socket = await open_socket(headers)
    assert (await hello(socket))["team"] == acme.public_id
    await socket.disconnect()


async def test_a_token_socket_may_omit_the_origin_but_not_send_a_wrong_one(acme):
    secret = await db(new_token)(acme)
    without = await open_socket(bearer_headers(secret))
    assert (await hello(without))["team"] == acme.public_id
    await without.disconnect()
    wrong = await open_socket(bearer_headers(secret, origin="https://evil.example"))
    assert await close_code(wrong) == 4403


async def test_hello_names_the_team_and_its_newest_event_id(alice, acme, relay_cursor):
    socket = await open_socket(await db(session_headers)(alice))
    assert await hello(socket) == {"type": "hello", "team": acme.public_id, "last_id": await last_id(acme)}
    await socket.disconnect()


async def test_a_user_in_two_teams_gets_the_team_chosen_in_the_session(alice, acme, umbrella):
    socket = await open_socket(await db(session_headers)(alice, team=umbrella))
    assert (await hello(socket))["team"] == umbrella.public_id
    await socket.disconnect()


async def test_a_sessions_sockets_are_closed_when_it_switches_team_and_another_sessions_stay(alice, acme, umbrella):
    """Its other tabs show the old team; their redraws would fetch the new team's parts into them
    (live.js keeps such a tab as drawn and says so; tests/live/test_page_team.py)."""
    from django.test import Client

    from tests.live.conftest import ORIGIN

    def logged_in() -> Client:
        client = Client()
        client.force_login(alice)
        client.post("/team/switch/", {"team": acme.public_id})
        return client

    switching, other = await db(logged_in)(), await db(logged_in)()

    def headers(client: Client) -> list[tuple[bytes, bytes]]:
        return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()), (b"origin", ORIGIN.encode())]

    tab, elsewhere = await open_socket(headers(switching)), await open_socket(headers(other))
    assert (await hello(tab))["team"] == (await hello(elsewhere))["team"] == acme.public_id
    await db(lambda: switching.post("/team/switch/", {"team": umbrella.public_id}))()
    assert await tab.receive_json_from(timeout=5) == {"type": "closed", "reason": "team switched"}
    assert await close_code(tab) == 4403
    assert await elsewhere.receive_nothing(timeout=0.5)
    await elsewhere.disconnect()


# --- What reaches whom -----------------------------------------------------------------------


async def test_a_teams_events_reach_only_that_team(alice, charlie, acme, globex, relay_cursor):
    alices = await open_socket(await db(session_headers)(alice))
    charlies = await open_socket(await db(session_headers)(charlie))
    await hello(alices)
    await hello(charlies)
    acme_event = await emit(acme, subject="JB_acme")
    globex_event = await emit(globex, subject="JB_globex")
    assert await relay() == 2

    frame = await alices.receive_json_from(timeout=5)
    assert frame == {"type": "event", **acme_event.as_message()}
    # Acme's event was relayed first: had it reached charlie, it would be his next frame.
    assert await next_event_id(charlies) == globex_event.id
    assert await alices.receive_nothing(timeout=0.2)
    await alices.disconnect()
    await charlies.disconnect()


async def test_since_replays_missed_events_in_order_then_live_ones_without_duplicates(bob, acme, relay_cursor):
    seen = await last_id(acme)
    missed = [await emit(acme, subject=f"JB_{n}") for n in range(3)]
    socket = await open_socket(await db(session_headers)(bob), path=f"/ws/?since={seen}")
    assert (await hello(socket))["last_id"] == missed[-1].id
    assert [await next_event_id(socket) for _ in missed] == [e.id for e in missed]
    # Where a client resumes from: it has every event of the team up to there.
    assert await socket.receive_json_from(timeout=5) == {"type": "synced", "to": missed[-1].id}

    # The relay now forwards the same three live; the socket must drop them.
    assert await relay() == 3
    live = await emit(acme, subject="JB_live")
    assert await relay() == 1
    assert await next_event_id(socket) == live.id
    await socket.disconnect()


async def test_too_many_missed_events_ask_the_client_to_resync(bob, acme):
    seen = await last_id(acme)
    await db(Event.objects.bulk_create)([Event(team=acme, kind="job.updated") for _ in range(1001)])
    socket = await open_socket(await db(session_headers)(bob), path=f"/ws/?since={seen}")
    await hello(socket)
    assert await socket.receive_json_from(timeout=5) == {"type": "resync"}
    await socket.disconnect()


@pytest.mark.parametrize("since", ["yesterday", "", "1.5"])
async def test_a_malformed_since_gets_an_error_frame_and_a_resync(bob, acme, since):
    """An empty one (a client's cursor variable unset) was read as no since at all: no replay, and
    no word that nothing had been replayed."""
    socket = await open_socket(await db(session_headers)(bob), path=f"/ws/?since={since}")
    await hello(socket)
    assert await socket.receive_json_from(timeout=5) == {"type": "error", "error": {
        "code": "validation_error", "message": "since must be a whole number (the last synced id).",
    }}
    assert await socket.receive_json_from(timeout=5) == {"type": "resync"}
    await socket.disconnect()


async def test_a_since_past_the_teams_newest_id_resumes_from_the_newest_id(bob, acme, relay_cursor):
    """A since above every id of the team (here past any bigint) used to come back as `synced.to`,
    and the socket's synced state sat above every real id: no later synced frame or catch-up reached
    it (tests/fault/test_live_catch_up.py). Not refused: a client's synced.to may rightly pass the
    team's newest id (the catch-up's is the relay's cursor, which counts every team's events)."""
    newest = await last_id(acme)
    socket = await open_socket(await db(session_headers)(bob), path="/ws/?since=99999999999999999999999")
    assert (await hello(socket))["last_id"] == newest
    assert await socket.receive_json_from(timeout=5) == {"type": "synced", "to": newest}
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


async def test_a_since_below_every_id_replays_from_the_start(bob, acme):
    """The other end of the same clamp: below any id (and any bigint) is the start."""
    events = await db(lambda: list(Event.objects.filter(team=acme).order_by("id").values_list("id", flat=True)))()
    socket = await open_socket(await db(session_headers)(bob), path="/ws/?since=-99999999999999999999999")
    await hello(socket)
    assert [await next_event_id(socket) for _ in events] == events
    assert await socket.receive_json_from(timeout=5) == {"type": "synced", "to": events[-1]}
    await socket.disconnect()


def prune_past(team, ids: list[int]) -> None:
    """The retention prunes these events (made 8 days old; the default keeps 7)."""
    from datetime import timedelta

    from django.utils import timezone

    from pulse_site.live.relay import events_prune

    Event.objects.filter(pk__in=ids).update(created_at=timezone.now() - timedelta(days=8))
    assert events_prune(older_than_days=7) == len(ids)


async def test_a_since_from_before_what_the_retention_pruned_asks_the_client_to_resync(bob, acme, globex):
    """The replay of what was left, then synced, told the client it had every event: the pruned ones it
    never got were gone from its page for good (a laptop asleep over the event retention)."""
    seen = await last_id(acme)
    gone = [(await emit(acme, subject="JB_gone")).id for _ in range(2)]
    await emit(acme, subject="JB_kept")
    await db(prune_past)(acme, gone)
    socket = await open_socket(await db(session_headers)(bob), path=f"/ws/?since={seen}")
    await hello(socket)
    assert await socket.receive_json_from(timeout=5) == {"type": "resync"}
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


async def test_a_since_after_what_was_pruned_replays_as_usual_and_another_teams_pruning_is_no_matter(bob, acme, globex):
    gone = [(await emit(acme, subject="JB_gone")).id]
    seen = gone[-1]
    theirs = [(await emit(globex, subject="JB_theirs")).id]
    kept = await emit(acme, subject="JB_kept")
    await db(prune_past)(acme, gone)
    await db(prune_past)(globex, theirs)
    socket = await open_socket(await db(session_headers)(bob), path=f"/ws/?since={seen}")
    await hello(socket)
    assert await next_event_id(socket) == kept.id
    assert await socket.receive_json_from(timeout=5) == {"type": "synced", "to": kept.id}
    await socket.disconnect()


async def test_a_page_of_a_team_whose_events_were_all_pruned_resumes_from_its_own_since_without_a_resync(
        bob, acme, globex, relay_cursor):
    """The page's since (event_last_id) read 0 once nothing was left, below the pruned mark: its
    socket was told resync, the page reloaded, rendered since 0 again, and reloaded for as long as
    the team had no new event (a team idle past its event retention)."""
    from pulse_site.live.selectors import event_last_id

    await db(prune_past)(acme, [event.id async for event in Event.objects.filter(team=acme)])
    since = await db(event_last_id)(team_id=acme.pk)
    socket = await open_socket(await db(session_headers)(bob), path=f"/ws/?since={since}")
    await hello(socket)
    assert await socket.receive_json_from(timeout=5) == {"type": "synced", "to": since}
    later = await emit(acme, subject="JB_new")
    await relay()
    assert await next_event_id(socket) == later.id
    await socket.disconnect()


async def test_bad_client_frames_get_error_frames_and_the_socket_stays_open(bob, acme):
    socket = await open_socket(await db(session_headers)(bob))
    await hello(socket)
    await socket.send_to(text_data="{nope")
    assert (await socket.receive_json_from(timeout=5))["error"]["code"] == "parse_error"
    await socket.send_to(bytes_data=b"\x00")
    assert (await socket.receive_json_from(timeout=5))["error"]["code"] == "parse_error"
    await socket.send_json_to({"type": "subscribe", "team": "TM_other"})
    assert (await socket.receive_json_from(timeout=5))["error"]["code"] == "unknown_message"
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=5) == {"type": "pong"}
    await socket.disconnect()


@pytest.mark.parametrize("depth", [66, 2_000])
async def test_a_frame_nested_deeper_than_the_api_takes_is_a_parse_error_and_the_socket_stays_open(bob, acme, depth):
    """100,000 levels made the decoder raise RecursionError and the socket dropped (1006; such a frame
    is now too large to read, and 2,000 levels still pass the decoder's limit); 66 brackets nest one
    level past what an API body may (pulse_site/parsers.py: the outermost is 0)."""
    socket = await open_socket(await db(session_headers)(bob))
    await hello(socket)
    await socket.send_to(text_data="[" * depth + "]" * depth)
    assert await socket.receive_json_from(timeout=5) == {"type": "error", "error": {
        "code": "parse_error", "message": "The frame is nested deeper than 64 levels.",
    }}
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=5) == {"type": "pong"}
    await socket.disconnect()


async def test_a_frame_larger_than_any_message_is_refused_unread_and_the_socket_stays_open(bob, acme):
    """A megabyte of `[0,0,…]` was parsed on the web process's event loop (1.5 s, every socket and page
    of the process waiting; the server's 16 MiB took 20 s and 2 GB) to answer unknown_message."""
    socket = await open_socket(await db(session_headers)(bob))
    await hello(socket)
    await socket.send_to(text_data="[" + "0," * 2**19 + "0]")
    assert await socket.receive_json_from(timeout=5) == {"type": "error", "error": {
        "code": "frame_too_large", "message": "A frame may have at most 4096 characters; this one has 1048579.",
    }}
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=5) == {"type": "pong"}
    await socket.disconnect()


async def test_json_no_column_could_hold_is_refused_naming_where_it_is(bob, acme):
    """It is valid JSON: 'not valid JSON' sent the client looking for the wrong mistake."""
    socket = await open_socket(await db(session_headers)(bob))
    await hello(socket)
    await socket.send_to(text_data='{"type": "follow", "job": "JB_\\u0000"}')
    assert await socket.receive_json_from(timeout=5) == {"type": "error", "error": {
        "code": "validation_error", "message": "job: NUL characters are not allowed.",
    }}
    await socket.disconnect()


# --- Losing access ---------------------------------------------------------------------------


def remove(team, user) -> None:
    membership_remove(membership=Membership.objects.get(team=team, user=user), by=None)


async def test_a_removed_members_socket_is_closed_and_the_others_stay(alice, bob, acme):
    bobs = await open_socket(await db(session_headers)(bob))
    alices = await open_socket(await db(session_headers)(alice))
    await hello(bobs)
    await hello(alices)
    await db(remove)(acme, bob)
    assert await bobs.receive_json_from(timeout=5) == {"type": "closed", "reason": "membership removed"}
    assert await close_code(bobs) == 4403
    await alices.send_json_to({"type": "ping"})
    assert await alices.receive_json_from(timeout=5) == {"type": "pong"}
    await alices.disconnect()


def signed_in(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


async def test_signing_out_closes_that_sessions_sockets_at_once(bob, alice, acme, no_catch_up):
    """Its other tabs: they went on getting the team's events until the next catch-up round."""
    client = await db(signed_in)(bob)
    tab = await open_socket(cookie_headers(client))
    other_session = await open_socket(cookie_headers(await db(signed_in)(bob)))
    await hello(tab)
    await hello(other_session)
    assert (await db(client.post)("/logout/")).status_code == 302
    await closed_with(tab, "signed out")
    await still_open(other_session)


@pytest.mark.parametrize("change", ["deactivated", "password set"])
async def test_a_user_deactivated_or_given_a_password_outside_the_services_has_their_sockets_closed_with(
        bob, alice, acme, no_catch_up, change):
    """In admin, a shell, `manage.py changepassword`: Django ends the user's sessions on their next
    request; their sockets went on until the next catch-up round."""
    tab = await open_socket(await db(session_headers)(bob))
    alices = await open_socket(await db(session_headers)(alice))
    await hello(tab)
    await hello(alices)
    if change == "deactivated":
        bob.is_active = False
    else:
        bob.set_password("another horse battery staple")
    await db(bob.save)()
    await closed_with(tab, "signed out")
    await still_open(alices)


async def test_a_user_saved_with_nothing_that_ends_access_keeps_their_sockets(bob, acme, no_catch_up):
    tab = await open_socket(await db(session_headers)(bob))
    await hello(tab)
    bob.first_name = "Bob"
    await db(bob.save)()
    await still_open(tab)


def member_event(team, user, kind: str, role: str = "member") -> Event:
    """The event of a member's removal or role change, as the services make it, without their close
    message: as if the channel layer lost it."""
    return event_emit(team=team, kind=kind, subject=str(user.pk),
                      payload={"username": user.get_username(), "role": role, "by": ""})


@pytest.mark.parametrize(("kind", "role", "reason"), [("member.removed", "member", "membership removed"),
                                                      ("member.changed", "viewer", "role changed")])
async def test_a_members_socket_whose_close_message_was_lost_is_closed_by_the_teams_event_of_it(
        bob, alice, acme, no_catch_up, relay_cursor, kind, role, reason):
    """Nothing after that event reaches them: not the team's next one, not the next catch-up round."""
    bobs, alices = await open_socket(await db(session_headers)(bob)), await open_socket(await db(session_headers)(alice))
    await hello(bobs)
    await hello(alices)
    changed = await db(member_event)(acme, bob, kind, role)
    after = await emit(acme, subject="JB_after")
    assert await relay() == 2
    assert await bobs.receive_json_from(timeout=5) == {"type": "closed", "reason": reason}
    assert await close_code(bobs) == 4403
    assert [await next_event_id(alices), await next_event_id(alices)] == [changed.id, after.id]
    await alices.disconnect()


async def test_a_members_socket_stays_for_an_event_of_another_member_or_the_same_role_or_from_before_it_opened(
        bob, alice, acme, no_catch_up, relay_cursor):
    """An event relayed late may predate the socket's access check (bob removed, then added again)."""
    before = await db(member_event)(acme, bob, "member.removed")
    bobs = await open_socket(await db(session_headers)(bob))
    await hello(bobs)
    others = [await db(member_event)(acme, alice, "member.removed"), await db(member_event)(acme, bob, "member.changed")]
    assert await relay() == 3
    assert [await next_event_id(bobs) for _ in range(3)] == [before.id, *(e.id for e in others)]
    await still_open(bobs)


async def test_a_revoked_tokens_socket_is_closed(acme):
    token, secret = await db(token_create)(team=acme, name="live", access="read", expires_at=None, by=None)
    socket = await open_socket(bearer_headers(secret))
    await hello(socket)
    await db(token_revoke)(token=await db(ApiToken.objects.get)(pk=token.pk), by=None)
    assert await socket.receive_json_from(timeout=5) == {"type": "closed", "reason": "token revoked"}
    assert await close_code(socket) == 4403



async def test_the_sockets_of_the_tokens_a_removed_admin_made_are_closed_with_theirs(alice, bob, acme):
    def bob_admin_with_a_token() -> str:
        Membership.objects.filter(team=acme, user=bob).update(role=Membership.Role.ADMIN)
        _, secret = token_create(team=acme, name="bob's", access="read", expires_at=None,
                                 by=Membership.objects.get(team=acme, user=bob))
        return secret

    bobs_token = await open_socket(bearer_headers(await db(bob_admin_with_a_token)()))
    others = await open_socket(bearer_headers(await db(new_token)(acme)))
    await hello(bobs_token)
    await hello(others)
    await db(remove)(acme, bob)
    assert await bobs_token.receive_json_from(timeout=5) == {"type": "closed", "reason": "token revoked"}
    assert await close_code(bobs_token) == 4403
    await others.send_json_to({"type": "ping"})
    assert await others.receive_json_from(timeout=5) == {"type": "pong"}
    await others.disconnect()


async def test_an_expiring_tokens_socket_is_closed_when_it_expires(acme, time_machine):
    """As its API calls get 401 from then on (it streamed the team's events on)."""
    from datetime import timedelta

    from django.utils import timezone

    # The clock held: a connect slower than the token's 1.5 s (a starved core) would find it expired
    # already. The socket still closes 1.5 s of the event loop's own time after it opened.
    time_machine.move_to(timezone.now(), tick=False)
    _, secret = await db(token_create)(team=acme, name="brief", access="read",
                                       expires_at=timezone.now() + timedelta(seconds=1.5), by=None)
    socket = await open_socket(bearer_headers(secret))
    await hello(socket)
    assert await socket.receive_json_from(timeout=5) == {"type": "closed", "reason": "token expired"}
    assert await close_code(socket) == 4403


# --- The embedded relay ----------------------------------------------------------------------


async def test_the_web_process_relays_events_between_startup_and_shutdown(alice, acme, relay_cursor):
    app = PulseASGI(channels_app, relay_in_web=True)
    lifespan = ApplicationCommunicator(app, {"type": "lifespan"})
    await lifespan.send_input({"type": "lifespan.startup"})
    assert await lifespan.receive_output(timeout=5) == {"type": "lifespan.startup.complete"}

    socket = await open_socket(await db(session_headers)(alice), app=app)
    await hello(socket)
    event = await emit(acme, subject="JB_embedded")
    assert await next_event_id(socket) == event.id  # forwarded by the background relay
    await socket.disconnect()

    await lifespan.send_input({"type": "lifespan.shutdown"})
    assert await lifespan.receive_output(timeout=5) == {"type": "lifespan.shutdown.complete"}
    await lifespan.wait(timeout=5)


async def test_guessing_tokens_on_sockets_is_bounded_per_address_with_the_apis_count(acme, settings):
    """A socket's bad token counts against its address as an API call's does (one count for
    both): past PULSE_API_AUTH_FAILURE_RATE every bearer socket from there is closed with 4429,
    saying why, before its token is looked up; another address connects."""
    settings.PULSE_API_AUTH_FAILURE_RATE = "2/min"
    good = await db(new_token)(acme)

    async def from_address(secret: str, address: str) -> WebsocketCommunicator:
        socket = WebsocketCommunicator(channels_app, "/ws/", headers=[*bearer_headers(secret), (b"host", b"testserver")])
        socket.scope["client"] = (address, 50000)
        assert (await socket.connect())[0]
        return socket

    for _ in range(2):
        assert await close_code(await from_address("pulse_" + "x" * 43, "10.0.0.7")) == 4401
    for secret in ("pulse_" + "y" * 43, good):
        refused = await from_address(secret, "10.0.0.7")
        frame = await refused.receive_json_from(timeout=5)
        assert frame["type"] == "closed"
        assert frame["reason"].startswith("Too many calls with an invalid token from this address (2 failures a minute)")
        assert await close_code(refused) == 4429
    await hello(await from_address(good, "10.0.0.8"))
