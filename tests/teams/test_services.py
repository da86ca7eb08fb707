from __future__ import annotations

import pytest

from pulse_site.errors import Conflict, PermissionDenied, ValidationError
from pulse_site.live.models import Event
from pulse_site.teams.models import ApiToken, Membership
from pulse_site.teams.services import (
    membership_remove,
    membership_set_role,
    token_authenticate,
    token_create,
    token_revoke,
)

Role = Membership.Role


def test_a_team_gets_a_prefixed_public_id_and_a_creation_event(acme):
    assert acme.public_id.startswith("TM_") and len(acme.public_id) == 29
    assert Event.objects.filter(team=acme, kind="team.created").count() == 1


def test_the_last_owner_cannot_be_demoted_or_removed(acme, alice):
    owner = Membership.objects.get(team=acme, user=alice)
    with pytest.raises(Conflict):
        membership_set_role(membership=owner, role=Role.ADMIN, by=None)
    with pytest.raises(Conflict):
        membership_remove(membership=owner, by=None)
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_a_member_cannot_manage_members(acme, bob, vic):
    bobs = Membership.objects.get(team=acme, user=bob)
    vics = Membership.objects.get(team=acme, user=vic)
    with pytest.raises(PermissionDenied):
        membership_set_role(membership=vics, role=Role.ADMIN, by=bobs)
    vics.refresh_from_db()
    assert vics.role == Role.VIEWER


def test_an_admin_cannot_grant_the_owner_role(acme, alice, bob):
    bobs = Membership.objects.get(team=acme, user=bob)
    membership_set_role(membership=bobs, role=Role.ADMIN, by=None)
    alices = Membership.objects.get(team=acme, user=alice)
    with pytest.raises(PermissionDenied):
        membership_set_role(membership=bobs, role=Role.OWNER, by=bobs)
    with pytest.raises(PermissionDenied):
        membership_remove(membership=alices, by=bobs)


def test_the_token_secret_is_stored_only_as_a_hash(acme):
    token, secret = token_create(team=acme, name="ci", access="read", expires_at=None, by=None)
    stored = ApiToken.objects.get(pk=token.pk)
    assert secret not in (stored.secret_hash, stored.prefix, stored.name)
    assert token_authenticate(secret) == stored
    assert token_authenticate(stored.secret_hash) is None


def test_a_revoked_token_no_longer_authenticates(acme):
    token, secret = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    token_revoke(token=token, by=None)
    assert token_authenticate(secret) is None


def test_a_token_needs_a_name_and_a_known_access(acme):
    with pytest.raises(ValidationError) as err:
        token_create(team=acme, name=" ", access="read", expires_at=None, by=None)
    assert err.value.fields == {"name": ["A token needs a name."]}
    with pytest.raises(ValidationError) as err:
        token_create(team=acme, name="x", access="admin", expires_at=None, by=None)
    assert list(err.value.fields) == ["access"]
    assert not ApiToken.objects.filter(team=acme).exists()
