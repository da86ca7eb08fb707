"""The notifications admin: targets and rules are made, changed and deleted through the same
services as the team's page and API (the same checks, field by field, and the team's events
saying an operator did it); a refused form makes nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from pulse_site.live.models import Event
from pulse_site.notifications.models import HoldTimer, Rule, Target
from pulse_site.notifications.services import rule_create, target_create
from tests.conftest import make_user

TARGET = {"name": "ops", "kind": "email", "address": "ops@example.com", "enabled": "on"}
RULE = {"kind": "job_failed", "handlers": "[]", "error_codes": "[]", "final_only": "on", "minutes": "", "enabled": "on"}


@pytest.fixture
def operator(db) -> Client:
    client = Client()
    client.force_login(make_user("operator", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def ops(acme) -> Target:
    return target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)


def audit(kind: str) -> list[tuple[str, str]]:
    return list(Event.objects.filter(kind=kind).values_list("subject", "payload__by"))


@pytest.mark.parametrize(("values", "field", "reason"), [
    ({"kind": "email", "address": "not an address"}, "address", "An email address."),
    ({"kind": "webhook", "address": "http://127.0.0.1:6379/"}, "address", None),
    ({"kind": "webhook", "address": "ftp://example.com/"}, "address", "An http(s) URL."),
], ids=["email", "internal-webhook", "not-http"])
def test_a_target_the_team_page_would_refuse_is_refused_on_its_field(operator, acme, values, field, reason):
    response = operator.post("/admin/notifications/target/add/", {**TARGET, "team": acme.pk, **values})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and (reason is None or errors[field] == [reason])
    assert (Target.objects.count(), audit("notification.target_added")) == (0, [])


def test_a_target_added_and_changed_in_the_admin_is_in_the_teams_events(operator, acme):
    operator.post("/admin/notifications/target/add/", {**TARGET, "team": acme.pk})
    target = Target.objects.get()
    assert operator.get(f"/admin/notifications/target/{target.pk}/change/").status_code == 200
    response = operator.post(f"/admin/notifications/target/{target.pk}/change/",
                             {**TARGET, "address": "oncall@example.com"})

    assert response.status_code == 302
    target.refresh_from_db()
    assert (target.address, target.created_by) == ("oncall@example.com", "admin operator")
    assert audit("notification.target_added") == [(target.public_id, "admin operator")]
    changed = Event.objects.get(kind="notification.target_changed")
    assert (changed.payload["by"], changed.payload["changed"]) == ("admin operator", ["address"])


def test_a_rule_pointing_at_another_teams_target_or_with_bad_lists_is_refused_field_by_field(operator, acme, globex):
    theirs = target_create(team=globex, name="theirs", kind="email", address="g@example.com", by=None)

    response = operator.post("/admin/notifications/rule/add/", {
        **RULE, "team": acme.pk, "target": theirs.pk, "handlers": '"pulse.noop"', "error_codes": '["bogus"]'})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert sorted(errors) == ["error_codes", "handlers", "target"]
    assert Rule.objects.count() == 0


def test_disabling_a_rule_in_the_admin_drops_its_hold_timers_and_says_so(operator, acme, ops):
    from jobs.services import job_pause, job_submit
    from pulse_site.notifications.services import notifications_match

    rule = rule_create(team=acme, target=ops, kind=Rule.Kind.HELD_LONG, minutes=10, by=None)
    notifications_match()
    job_pause(job=job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job, by="alice")
    notifications_match()
    assert HoldTimer.objects.filter(rule=rule).count() == 1

    assert operator.get(f"/admin/notifications/rule/{rule.pk}/change/").status_code == 200
    response = operator.post(f"/admin/notifications/rule/{rule.pk}/change/", {
        **RULE, "target": ops.pk, "minutes": "10", "enabled": ""})

    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.enabled, HoldTimer.objects.filter(rule=rule).count()) == (False, 0)
    assert Event.objects.get(kind="notification.rule_changed").payload["by"] == "admin operator"


def test_targets_and_rules_are_deleted_through_the_services_only(operator, acme, ops):
    rule = rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)

    raw = operator.post(f"/admin/notifications/target/{ops.pk}/delete/", {"post": "yes"})
    operator.post("/admin/notifications/rule/", {"action": "action_delete", "_selected_action": [rule.pk]})
    operator.post("/admin/notifications/target/", {"action": "action_delete", "_selected_action": [ops.pk]})

    assert raw.status_code == 403
    assert (Target.objects.count(), Rule.objects.count()) == (0, 0)
    assert audit("notification.rule_removed") == [(rule.public_id, "admin operator")]
    assert audit("notification.target_removed") == [(ops.public_id, "admin operator")]
