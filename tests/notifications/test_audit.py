"""Who pointed the team's notifications where: every change of a target or a rule is an event of
the team, named by the person or token that made it, without the target's address."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pulse_site.activity import activity_text
from pulse_site.live.models import Event
from pulse_site.notifications.models import Rule, Target


pytestmark = pytest.mark.django_db


def audit(team) -> list[tuple[str, str]]:
    return [(e.kind, activity_text(e.kind, e.payload))
            for e in Event.objects.filter(team=team, kind__startswith="notification.").order_by("id")]


def test_the_page_records_each_change_by_the_member_who_made_it(alice_client, acme, globex):
    alice_client.post("/notifications/targets/new/", {"name": "Ops", "kind": "webhook",
                                                      "address": "https://hooks.example.com/T0/secret-path"})
    target = Target.objects.get(team=acme)
    alice_client.post("/notifications/rules/new/", {"kind": "job_failed", "target": target.public_id})
    rule = Rule.objects.get(team=acme)
    alice_client.post(f"/notifications/targets/{target.public_id}/edit/",
                      {"name": "Ops", "kind": "webhook", "address": "https://elsewhere.example.com/x"})
    alice_client.post(f"/notifications/targets/{target.public_id}/edit/",
                      {"name": "Ops", "kind": "webhook", "address": "https://elsewhere.example.com/x"})  # no change
    alice_client.post(f"/notifications/targets/{target.public_id}/enabled/", {"enabled": "0"})
    alice_client.post(f"/notifications/targets/{target.public_id}/rotate/")
    alice_client.post(f"/notifications/rules/{rule.public_id}/delete/")
    alice_client.post(f"/notifications/targets/{target.public_id}/delete/")

    assert audit(acme) == [
        ("notification.target_added", "Target Ops (webhook) added by alice"),
        ("notification.rule_added", "Rule job_failed → Ops added by alice"),
        ("notification.target_changed", "Target Ops: address changed by alice"),
        ("notification.target_changed", "Target Ops: disabled changed by alice"),
        ("notification.target_changed", "Target Ops: signing secret changed by alice"),
        ("notification.rule_removed", "Rule job_failed → Ops removed by alice"),
        ("notification.target_removed", "Target Ops removed by alice"),
    ]
    payloads = " ".join(str(e.payload) for e in Event.objects.filter(kind__startswith="notification."))
    assert "example.com" not in payloads  # an address may carry a secret: never in the events
    assert audit(globex) == []


def test_the_api_records_the_owner_who_made_a_change(acme, alice):
    # (API tokens cannot change notifications: an owner or admin does, signed in.)
    client = APIClient()
    client.force_login(alice)
    created = client.post("/api/v1/notifications/targets/", {"name": "Pager", "kind": "email",
                                                             "address": "pager@example.com"}, format="json")
    assert created.status_code == 201, created.json()
    target_id = created.json()["id"]
    rule = client.post("/api/v1/notifications/rules/", {"target": target_id, "kind": "held_long", "minutes": 30},
                       format="json").json()
    client.patch(f"/api/v1/notifications/rules/{rule['id']}/", {"minutes": 45, "handlers": ["pulse.noop"]},
                 format="json")

    assert audit(acme) == [
        ("notification.target_added", "Target Pager (email) added by alice"),
        ("notification.rule_added", "Rule held_long → Pager added by alice"),
        ("notification.rule_changed", "Rule held_long → Pager: handlers, minutes changed by alice"),
    ]


def test_a_refused_change_records_nothing(bob_client, acme):
    from pulse_site.notifications.services import target_create

    target = target_create(team=acme, name="Ops", kind="email", address="ops@example.com", by=None, created_by="alice")
    before = audit(acme)
    bob_client.post(f"/notifications/targets/{target.public_id}/delete/")  # a member, not a manager
    bob_client.post(f"/notifications/targets/{target.public_id}/edit/", {"name": "", "kind": "email",
                                                                         "address": "ops@example.com"})
    assert Target.objects.filter(pk=target.pk).exists()
    assert audit(acme) == before == [("notification.target_added", "Target Ops (email) added by alice")]
