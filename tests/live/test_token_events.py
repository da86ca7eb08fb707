"""A team's API tokens are listed to its owners and admins alone (the team page, /api/v1/tokens/), so
the events about them (a token's name, prefix and access, who made or revoked it) are theirs alone
too, wherever events are read: the overview's recent events and their live rows, the activity
page, the events API, and the live socket (live, replayed after a reconnect, or caught up from the
outbox). Members, viewers and tokens (read or read-write) never see them; another team never does.
Alice owns Acme, ada is its admin, bob a member, vic its viewer; charlie owns Globex."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from pulse_site.live.models import Event, RelayCursor
from pulse_site.live.relay import CURSOR_NAME, relay_batch
from pulse_site.live.services import event_emit
from pulse_site.teams.models import Membership
from pulse_site.teams.services import membership_add, membership_set_role, token_create, token_revoke
from tests.conftest import logged_in, make_user, token_client
from tests.live.conftest import bearer_headers, close_code, open_socket, session_headers

pytestmark = pytest.mark.django_db(transaction=True)
db = database_sync_to_async
Role = Membership.Role


@pytest.fixture
def ada(acme):
    user = make_user("ada")
    membership_add(team=acme, user=user, role=Role.ADMIN, by=None)
    return user


def make_token_events(team) -> tuple[Event, Event]:
    """A token made and revoked, as an owner does it on the team page."""
    token, _ = token_create(team=team, name="deploy-bot", access="write", expires_at=None, by=None)
    token_revoke(token=token, by=None)
    created, revoked = Event.objects.filter(team=team, kind__startswith="token.", subject=token.public_id).order_by("id")
    return created, revoked


CREATED, REVOKED = "Token deploy-bot (write) created", "Token deploy-bot revoked"


# --- Pages and the API --------------------------------------------------------------------------


def pages(client: Client, subject: str) -> dict[str, str]:
    urls = ["/", "/?events=all", "/overview/activity/?after=0", "/activity/", "/activity/?family=token",
            f"/activity/?subject={subject}"]
    return {url: client.get(url).content.decode() for url in urls}


def test_owners_and_admins_see_token_events_on_the_overview_its_live_rows_and_the_activity_page(
        alice, ada, bob, vic, charlie, acme, globex):
    created, _ = make_token_events(acme)
    for user in (alice, ada):
        for url, page in pages(logged_in(user), created.subject).items():
            assert CREATED in page and REVOKED in page, (user, url)
    for user in (bob, vic, charlie):
        for url, page in pages(logged_in(user), created.subject).items():
            assert "deploy-bot" not in page and 'data-kind="token.' not in page, (user, url)


def test_the_activity_filter_offers_the_token_family_only_to_those_who_see_its_events(alice, ada, bob, vic, acme):
    option = '<option value="token">API tokens</option>'
    for user in (alice, ada):
        assert option in logged_in(user).get("/activity/").content.decode(), user
    for user in (bob, vic):
        client = logged_in(user)
        assert option not in client.get("/activity/").content.decode(), user
        response = client.get("/activity/?family=token")
        assert response.status_code == 400
        assert "Choose one of job, execution, schedule, budget, queue, team, member, notification" in (
            response.content.decode()), user


def test_the_events_api_gives_token_events_to_owners_and_admins_and_never_to_a_token(
        alice, ada, bob, vic, acme, globex):
    created, revoked = make_token_events(acme)
    theirs = make_token_events(globex)

    def kinds(client, query: str = "") -> list[tuple[str, str]]:
        response = client.get(f"/api/v1/events/?all=true&limit=200{query}")
        assert response.status_code == 200, response.content
        return [(e["kind"], e["subject"]) for e in response.json()["results"] if e["kind"].startswith("token.")]

    for user in (alice, ada):
        client = logged_in(user)
        assert kinds(client) == kinds(client, "&family=token") == [("token.revoked", revoked.subject),
                                                                    ("token.created", created.subject)]
        assert kinds(client, f"&subject={created.subject}") == [("token.revoked", revoked.subject),
                                                                 ("token.created", created.subject)]
        assert theirs[0].subject not in {subject for _, subject in kinds(client)}
    for client in (logged_in(bob), logged_in(vic), token_client(acme, "read"), token_client(acme, "write")):
        assert kinds(client) == kinds(client, "&family=token") == kinds(client, f"&subject={created.subject}") == []


# --- The live socket ----------------------------------------------------------------------------


async def hello(socket) -> dict:
    frame = await socket.receive_json_from(timeout=5)
    assert frame["type"] == "hello", frame
    return frame


async def event_frames(socket, until: int) -> list[tuple[int, str]]:
    """(id, kind) of the events the socket receives up to the event `until`."""
    got: list[tuple[int, str]] = []
    while until not in [i for i, _ in got]:
        frame = await socket.receive_json_from(timeout=5)
        if frame["type"] == "event":
            got.append((frame["id"], frame["kind"]))
    return got


def token_and_job_events(team) -> tuple[list[tuple[int, str]], int]:
    """A token made and revoked, then a job's event: ((id, kind) of all three, the job's event id)."""
    created, revoked = make_token_events(team)
    job = event_emit(team=team, kind="job.completed", subject="JB_after")
    return [(created.id, created.kind), (revoked.id, revoked.kind), (job.id, job.kind)], job.id


async def sockets(alice, ada, bob, vic, charlie, acme, path: str = "/ws/") -> dict[str, object]:
    secret = (await db(token_create)(team=acme, name="live", access="write", expires_at=None, by=None))[1]
    await db(relay_batch)()  # that token's own event, before any socket opens
    opened = {}
    for name, user in (("alice", alice), ("ada", ada), ("bob", bob), ("vic", vic), ("charlie", charlie)):
        opened[name] = await open_socket(await db(session_headers)(user), path=path)
    opened["token"] = await open_socket(bearer_headers(secret), path=path)
    for socket in opened.values():
        await hello(socket)
    return opened


async def replayed(socket) -> list[tuple[int, str]]:
    """(id, kind) of the events a resumed socket is sent before it is told it is synced."""
    got: list[tuple[int, str]] = []
    while (frame := await socket.receive_json_from(timeout=5))["type"] != "synced":
        assert frame["type"] == "event", frame
        got.append((frame["id"], frame["kind"]))
    return got


async def test_token_events_reach_the_sockets_of_owners_and_admins_only(alice, ada, bob, vic, charlie, acme, globex):
    opened = await sockets(alice, ada, bob, vic, charlie, acme)
    events, job = await db(token_and_job_events)(acme)
    await db(relay_batch)()
    for name in ("alice", "ada"):
        assert await event_frames(opened[name], job) == events, name
    for name in ("bob", "vic", "token"):  # the job's event, with nothing before it
        assert await event_frames(opened[name], job) == events[2:], name
    # Globex's own event is the first charlie hears: none of Acme's came before it.
    theirs = await db(event_emit)(team=globex, kind="job.completed", subject="JB_theirs")
    await db(relay_batch)()
    assert await event_frames(opened["charlie"], theirs.id) == [(theirs.id, theirs.kind)]
    for socket in opened.values():
        await socket.disconnect()


async def test_a_reconnect_replays_token_events_to_owners_and_admins_only(alice, ada, bob, vic, charlie, acme, globex):
    since = await db(lambda: Event.objects.filter(team=acme).order_by("-id").values_list("id", flat=True).first())()
    events, job = await db(token_and_job_events)(acme)
    opened = await sockets(alice, ada, bob, vic, charlie, acme, path=f"/ws/?since={since}")
    for name, socket in opened.items():
        if name == "charlie":
            continue
        frames = await replayed(socket)
        if name in ("alice", "ada"):  # and the event of the token the sockets' fixture made
            assert frames[:3] == events and [kind for _, kind in frames[3:]] == ["token.created"], name
        else:
            assert frames == events[2:], name
    for socket in opened.values():
        await socket.disconnect()


async def test_the_catch_up_sends_what_the_layer_dropped_within_the_same_rule(alice, ada, bob, vic, charlie, acme,
                                                                               globex, quick_catch_up):
    opened = await sockets(alice, ada, bob, vic, charlie, acme)
    events, job = await db(token_and_job_events)(acme)
    # The relay forwarded them, but the layer delivered them to nobody (the subscription was down).
    await db(lambda: RelayCursor.objects.filter(name=CURSOR_NAME).update(last_id=job))()
    for name in ("alice", "ada"):
        assert await event_frames(opened[name], job) == events, name
    for name in ("bob", "vic", "token"):
        assert await event_frames(opened[name], job) == events[2:], name
    for socket in opened.values():
        await socket.disconnect()


async def test_a_role_change_closes_the_members_sockets_so_they_reopen_with_what_the_new_role_sees(ada, alice, acme):
    """The socket knows what its member may see from when it opened: an admin made a viewer would go
    on hearing of tokens (live.js loads the page again for this reason, and its socket with it)."""
    demoted, other = await open_socket(await db(session_headers)(ada)), await open_socket(await db(session_headers)(alice))
    await hello(demoted)
    await hello(other)
    membership = await db(Membership.objects.get)(team=acme, user=ada)
    await db(membership_set_role)(membership=membership, role=Role.VIEWER, by=None)
    assert await demoted.receive_json_from(timeout=5) == {"type": "closed", "reason": "role changed"}
    assert await close_code(demoted) == 4403
    # The other member's socket stays open: the first frame after the close is the answer to its ping.
    await other.send_json_to({"type": "ping"})
    assert await other.receive_json_from(timeout=5) == {"type": "pong"}
    await other.disconnect()
