"""An open socket stops delivering the team's events when the access it was opened with ends, however
it ended: the services that revoke access tell the socket at once (tests/live/test_consumer.py),
and every catch-up round (CATCH_UP_SECONDS) checks again, for the ways no service sees (signing out
in another tab, a session that expired, a user deactivated or a password set in admin, a close
message the channel layer dropped)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from pulse_site.teams.models import ApiToken, Membership
from pulse_site.teams.services import token_create
from tests.live.conftest import bearer_headers, closed_with, cookie_headers, open_socket, session_headers, still_open

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quick_catch_up")]
db = database_sync_to_async


async def opened(headers):
    socket = await open_socket(headers)
    assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
    return socket


async def test_signing_out_in_another_tab_closes_that_sessions_sockets(bob, alice, acme):
    def signed_in() -> Client:
        client = Client()
        client.force_login(bob)
        return client

    client = await db(signed_in)()
    tab = await opened(cookie_headers(client))
    alices = await opened(await db(session_headers)(alice))
    assert (await db(client.post)("/logout/")).status_code == 302
    await closed_with(tab, "signed out")
    await still_open(alices)


async def test_an_expired_sessions_socket_is_closed(bob, alice, acme):
    headers = await db(session_headers)(bob)
    key = headers[0][1].decode().removeprefix("sessionid=")
    tab = await opened(headers)
    alices = await opened(await db(session_headers)(alice))
    await db(lambda: Session.objects.filter(pk=key).update(expire_date=timezone.now() - timedelta(seconds=1)))()
    await closed_with(tab, "signed out")
    await still_open(alices)


async def test_a_user_deactivated_in_admin_has_their_sockets_closed(bob, alice, acme):
    tab = await opened(await db(session_headers)(bob))
    alices = await opened(await db(session_headers)(alice))
    bob.is_active = False
    await db(bob.save)(update_fields=["is_active"])
    await closed_with(tab, "signed out")
    await still_open(alices)


async def test_a_password_set_in_admin_closes_the_users_sockets(bob, alice, acme):
    """Django ends the user's sessions on their next request (the password's hash is in each); the
    socket is one too."""
    tab = await opened(await db(session_headers)(bob))
    alices = await opened(await db(session_headers)(alice))
    bob.set_password("another horse battery staple")
    await db(bob.save)(update_fields=["password"])
    await closed_with(tab, "signed out")
    await still_open(alices)


async def test_a_membership_gone_without_its_close_message_still_closes_the_socket(bob, alice, acme):
    """The message may be lost (the channel layer down a moment); a deleted user takes their
    memberships with them and no service runs at all."""
    tab = await opened(await db(session_headers)(bob))
    alices = await opened(await db(session_headers)(alice))
    await db(lambda: Membership.objects.filter(team=acme, user=bob).delete())()
    await closed_with(tab, "membership removed")
    await still_open(alices)


async def test_a_token_revoked_without_its_close_message_still_closes_the_socket(acme):
    token, secret = await db(token_create)(team=acme, name="live", access="read", expires_at=None, by=None)
    _, other = await db(token_create)(team=acme, name="other", access="read", expires_at=None, by=None)
    socket = await opened(bearer_headers(secret))
    others = await opened(bearer_headers(other))
    await db(lambda: ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now()))()
    await closed_with(socket, "token revoked")
    await still_open(others)


async def test_a_token_whose_maker_is_deactivated_in_admin_has_its_socket_closed(alice, acme):
    """As its API calls get 401 (and the maker's own sockets close, above): a person's token is not
    a way around their deactivation."""
    _, secret = await db(token_create)(team=acme, name="alice's", access="read", expires_at=None,
                                       by=await db(Membership.objects.get)(team=acme, user=alice))
    _, other = await db(token_create)(team=acme, name="operator's", access="read", expires_at=None, by=None)
    socket = await opened(bearer_headers(secret))
    others = await opened(bearer_headers(other))
    alice.is_active = False
    await db(alice.save)(update_fields=["is_active"])
    await closed_with(socket, "its maker is deactivated")
    await still_open(others)


async def test_a_role_changed_without_its_close_message_still_closes_the_members_sockets(alice, acme):
    """The socket is sent what its member's role saw when it opened (an admin: the token events); the
    close message of a role change may be lost, or sent before a socket that read the old role
    joined its group, and the demoted member went on hearing of tokens."""
    from pulse_site.teams.services import membership_add
    from tests.conftest import make_user

    ada = await db(make_user)("ada")
    await db(membership_add)(team=acme, user=ada, role=Membership.Role.ADMIN, by=None)
    tab = await opened(await db(session_headers)(ada))
    alices = await opened(await db(session_headers)(alice))
    await db(lambda: Membership.objects.filter(team=acme, user=ada).update(role=Membership.Role.VIEWER))()
    await closed_with(tab, "role changed")
    await still_open(alices)
