"""A retired team's live sockets: the open ones close saying why, new ones are refused; another
team's stay open."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from pulse_site.teams.services import team_reactivate, team_retire
from tests.live.conftest import close_code, open_socket, session_headers

pytestmark = pytest.mark.django_db(transaction=True)
db = database_sync_to_async


async def opened(headers):
    socket = await open_socket(headers)
    assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
    return socket


async def test_retiring_a_team_closes_its_sockets_saying_why_and_not_another_teams(bob, charlie, acme, globex):
    bobs = await opened(await db(session_headers)(bob))
    charlies = await opened(await db(session_headers)(charlie))
    await db(team_retire)(team=acme, who="operator")
    assert await bobs.receive_json_from(timeout=5) == {"type": "closed", "reason": "team retired"}
    assert await close_code(bobs) == 4403
    await charlies.send_json_to({"type": "ping"})
    assert await charlies.receive_json_from(timeout=5) == {"type": "pong"}
    await charlies.disconnect()


async def test_a_retired_teams_member_cannot_open_a_socket_until_it_is_reactivated(bob, acme):
    await db(team_retire)(team=acme, who="operator")
    refused = await open_socket(await db(session_headers)(bob))
    assert await refused.receive_json_from(timeout=5) == {"type": "closed", "reason": "team retired"}
    assert await close_code(refused) == 4403
    await db(team_reactivate)(team=acme, who="operator")
    socket = await opened(await db(session_headers)(bob))
    await socket.disconnect()
