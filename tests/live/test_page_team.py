"""A page's socket serves the team the page was drawn for (`/ws/?team=TM_…`, live.js sends it), or
nothing: a member removed from it, or whose browser switched to another team in another tab, is
refused with the reason, never moved to another of their teams. A page drawn for Acme fed with
Umbrella's events would show them as Acme's, and replay Umbrella's from an Acme id.

bob is a member of Acme and of Umbrella (alice's)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from pulse_site.live.models import Event
from pulse_site.live.services import event_emit
from pulse_site.teams.models import Membership
from pulse_site.teams.services import membership_add, membership_remove
from tests.live.conftest import ORIGIN, close_code, open_socket, session_headers

pytestmark = pytest.mark.django_db(transaction=True)
db = database_sync_to_async


@pytest.fixture
def bob_in_umbrella(bob, umbrella):
    membership_add(team=umbrella, user=bob, role=Membership.Role.MEMBER, by=None)


async def refused_with(socket, reason: str) -> None:
    """Refused before anything of a team was sent: the reason, then 4403."""
    assert await socket.receive_json_from(timeout=5) == {"type": "closed", "reason": reason}
    assert await close_code(socket) == 4403


def signed_in(user, team) -> Client:
    """A browser session whose pages show `team` (switched to it, as the switcher does)."""
    client = Client()
    client.force_login(user)
    assert client.post("/team/switch/", {"team": team.public_id}).status_code == 302
    return client


def cookie(client: Client) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()), (b"origin", ORIGIN.encode())]


def remove(team, user) -> None:
    membership_remove(membership=Membership.objects.get(team=team, user=user), by=None)


async def test_a_page_gets_the_team_it_was_drawn_for(bob, acme, bob_in_umbrella):
    socket = await open_socket(await db(session_headers)(bob, team=acme), path=f"/ws/?team={acme.public_id}")
    assert (await socket.receive_json_from(timeout=5))["team"] == acme.public_id
    await socket.disconnect()


async def test_a_removed_members_page_reconnecting_is_refused_not_moved_to_their_other_team(
        bob, acme, umbrella, bob_in_umbrella):
    """Removed while the connection was down (a network break, a deploy): the page reconnects, with
    its since, and got Umbrella's hello and Umbrella's events after an Acme id."""
    client = await db(signed_in)(bob, acme)
    since = await db(lambda: Event.objects.order_by("-id").values_list("id", flat=True).first())()
    await db(remove)(acme, bob)
    await db(event_emit)(team=umbrella, kind="job.updated", subject="JB_umbrella")
    socket = await open_socket(cookie(client), path=f"/ws/?team={acme.public_id}&since={since}")
    await refused_with(socket, "not in the team")


async def test_a_socket_without_a_team_is_refused_once_its_sessions_team_is_gone(bob, acme, bob_in_umbrella):
    """As the API refuses a session call then (TeamSessionAuthentication): the session still names
    Acme, so whatever opened the socket was drawn for Acme."""
    client = await db(signed_in)(bob, acme)
    await db(remove)(acme, bob)
    socket = await open_socket(cookie(client))
    await refused_with(socket, "not in the team")


async def test_a_page_loaded_after_the_removal_gets_the_team_it_shows(bob, acme, umbrella, bob_in_umbrella):
    client = await db(signed_in)(bob, acme)
    await db(remove)(acme, bob)
    assert (await db(client.get)("/")).status_code == 200  # the overview falls back to Umbrella
    socket = await open_socket(cookie(client), path=f"/ws/?team={umbrella.public_id}")
    assert (await socket.receive_json_from(timeout=5))["team"] == umbrella.public_id
    await socket.disconnect()


async def test_a_page_drawn_for_the_team_switched_from_is_refused_and_told_so(bob, acme, umbrella, bob_in_umbrella):
    """Its redraws would fetch the switched-to team's rows into it (the pages' fetches follow the
    session), as its forms would act on that team (refused, 409): live.js keeps the page as drawn
    and says so."""
    client = await db(signed_in)(bob, umbrella)
    socket = await open_socket(cookie(client), path=f"/ws/?team={acme.public_id}")
    await refused_with(socket, "team switched")


async def test_charlie_naming_acme_is_refused_as_if_it_did_not_exist(charlie, acme, globex):
    named = await open_socket(await db(session_headers)(charlie), path=f"/ws/?team={acme.public_id}")
    await refused_with(named, "not in the team")
    made_up = await open_socket(await db(session_headers)(charlie), path="/ws/?team=TM_nosuchteam")
    await refused_with(made_up, "not in the team")


async def test_charlie_cannot_choose_acme_by_putting_its_id_in_his_session(charlie, globex, acme):
    socket = await open_socket(await db(session_headers)(charlie, team=acme))
    await refused_with(socket, "not in the team")


async def test_a_token_socket_naming_another_team_than_its_own_is_refused(acme, globex):
    """A token acts for its one team: a client that names another expects that team's events."""
    from pulse_site.teams.services import token_create
    from tests.live.conftest import bearer_headers

    _, secret = await db(token_create)(team=acme, name="live", access="read", expires_at=None, by=None)
    other = await open_socket(bearer_headers(secret), path=f"/ws/?team={globex.public_id}")
    await refused_with(other, "not in the team")
    own = await open_socket(bearer_headers(secret), path=f"/ws/?team={acme.public_id}")
    assert (await own.receive_json_from(timeout=5))["team"] == acme.public_id
    await own.disconnect()
