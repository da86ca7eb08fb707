"""Editing, disabling and deleting targets and rules: on the page and over the API, by owners and
admins only; members, viewers and tokens read; another team's ids are 404 and change nothing (a
rule's target naming one is a 400 on `target`, as a target that does not exist is)."""

from __future__ import annotations

import html

import pytest
from rest_framework.test import APIClient

from pulse_site.errors import ValidationError
from pulse_site.notifications.models import Rule, Target
from pulse_site.notifications.services import rule_create, target_create

pytestmark = pytest.mark.django_db(transaction=True)


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def ops(acme):
    return target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)


@pytest.fixture
def rule(acme, ops):
    return rule_create(team=acme, target=ops, kind=Rule.Kind.HELD_LONG, minutes=10, by=None)


def rows() -> tuple[list[dict], list[dict]]:
    return (list(Target.objects.order_by("pk").values()), list(Rule.objects.order_by("pk").values()))


# --- API ------------------------------------------------------------------------------------------


def test_rotating_an_email_targets_secret_is_a_400_on_the_field_as_its_page_offers_no_rotate(alice, alice_client, ops):
    before = rows()
    response = session(alice).patch(f"/api/v1/notifications/targets/{ops.public_id}/", {"rotate_secret": True},
                                    format="json")
    assert response.status_code == 400
    reason = "Only webhook targets have a signing secret; email targets have none."
    assert response.json()["error"]["fields"] == {"rotate_secret": [reason]}
    assert rows() == before
    assert f"/notifications/targets/{ops.public_id}/rotate/" not in alice_client.get("/notifications/").content.decode()


def test_an_owner_edits_disables_and_deletes_a_target_over_the_api(alice, acme, ops, rule):
    client = session(alice)
    url = f"/api/v1/notifications/targets/{ops.public_id}/"
    response = client.patch(url, {"name": "on-call", "address": "oncall@example.com", "enabled": False}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["address"], body["enabled"]) == ("on-call", "oncall@example.com", False)
    assert "secret" not in body
    assert client.get(url).json()["name"] == "on-call"

    old_secret = Target.objects.get(pk=ops.pk).secret
    rotated = client.patch(url, {"kind": "webhook", "address": "https://hooks.example.com/x", "rotate_secret": True},
                           format="json").json()
    assert rotated["secret"] == Target.objects.get(pk=ops.pk).secret != old_secret

    assert client.delete(url).status_code == 204
    assert not Target.objects.exists() and not Rule.objects.exists()
    assert client.get(url).status_code == 404


def test_the_schema_of_a_target_patch_answer_holds_a_secret_only_when_one_was_asked_for(alice, ops):
    """The answer to a PATCH without rotate_secret has no `secret`, as its description says; the
    schema documented it as required, so a client validating answers refused every other edit."""
    schema = session(alice).get("/api/schema/?format=json").json()
    ref = schema["paths"]["/api/v1/notifications/targets/{target_id}/"]["patch"]["responses"]["200"]
    answer = schema["components"]["schemas"][ref["content"]["application/json"]["schema"]["$ref"].split("/")[-1]]
    assert "secret" in answer["properties"] and "secret" not in answer["required"]
    body = session(alice).patch(f"/api/v1/notifications/targets/{ops.public_id}/", {"name": "x"}, format="json").json()
    assert set(answer["required"]) <= set(body) and "secret" not in body


def test_bad_target_changes_are_refused_with_the_field_and_nothing_changes(alice, acme, ops):
    target_create(team=acme, name="pager", kind="email", address="p@example.com", by=None)
    client = session(alice)
    url = f"/api/v1/notifications/targets/{ops.public_id}/"
    before = rows()
    for change, status, field in (({"kind": "webhook"}, 400, "address"),  # an email address is no URL
                                  ({"address": "not an address"}, 400, "address"),
                                  ({"name": ""}, 400, "name"),
                                  ({"name": "pager"}, 409, "name"),
                                  ({"secret": "mine"}, 400, "secret")):
        response = client.patch(url, change, format="json")
        assert response.status_code == status, change
        assert list(response.json()["error"]["fields"]) == [field], change
    assert rows() == before


def test_an_owner_edits_disables_and_deletes_a_rule_over_the_api(alice, acme, ops, rule):
    pager = target_create(team=acme, name="pager", kind="email", address="p@example.com", by=None)
    client = session(alice)
    url = f"/api/v1/notifications/rules/{rule.public_id}/"
    response = client.patch(url, {"minutes": 30, "enabled": False, "target": pager.public_id,
                                  "handlers": ["pulse.noop"]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"id": rule.public_id, "target": pager.public_id, "kind": "held_long",
                               "handlers": ["pulse.noop"], "error_codes": [], "final_only": True, "minutes": 30,
                               "enabled": False}
    assert client.get(url).json()["minutes"] == 30
    assert client.delete(url).status_code == 204
    assert not Rule.objects.exists() and Target.objects.count() == 2


def test_bad_rule_changes_are_refused_with_the_field_and_nothing_changes(alice, acme, rule):
    client = session(alice)
    url = f"/api/v1/notifications/rules/{rule.public_id}/"
    before = rows()
    for change, field in (({"minutes": 0}, "minutes"), ({"minutes": None}, "minutes"),
                          ({"minutes": 10081}, "minutes"), ({"handlers": "pulse.noop"}, "handlers"),
                          ({"kind": "job_failed"}, "kind")):
        response = client.patch(url, change, format="json")
        assert response.status_code == 400, change
        assert list(response.json()["error"]["fields"]) == [field], change
    assert rows() == before


def test_a_held_long_rule_needs_its_minutes(alice, acme, ops):
    client = session(alice)
    response = client.post("/api/v1/notifications/rules/", {"target": ops.public_id, "kind": "held_long"},
                           format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["minutes"]
    created = client.post("/api/v1/notifications/rules/", {"target": ops.public_id, "kind": "held_long",
                                                           "minutes": 15}, format="json")
    assert created.status_code == 201 and created.json()["minutes"] == 15
    other = client.post("/api/v1/notifications/rules/", {"target": ops.public_id, "kind": "overrun",
                                                         "minutes": None}, format="json")
    assert other.status_code == 201 and other.json()["minutes"] is None


def test_minutes_on_any_other_kind_are_refused_not_dropped(alice, acme, ops):
    client = session(alice)
    response = client.post("/api/v1/notifications/rules/", {"target": ops.public_id, "kind": "job_failed",
                                                            "minutes": 5}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"minutes": ["Only held_long rules take minutes; a job_failed "
                                                              "rule has none."]}
    assert not Rule.objects.exists()
    failed = rule_create(team=acme, target=ops, kind=Rule.Kind.JOB_FAILED, by=None)
    before = rows()
    response = client.patch(f"/api/v1/notifications/rules/{failed.public_id}/", {"minutes": 5}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["minutes"]
    assert rows() == before


def test_a_rules_handlers_are_ones_a_team_can_submit_each_once_and_not_too_many(alice, acme, ops):
    client = session(alice)

    def create(handlers):
        return client.post("/api/v1/notifications/rules/", {"target": ops.public_id, "kind": "job_failed",
                                                            "handlers": handlers}, format="json")

    for handlers, reason in ((["nope.nothere"], "Unknown handler 'nope.nothere'."),
                             (["pulse.noop", "pulse.notify"], "Unknown handler 'pulse.notify'."),  # Pulse's own
                             (["pulse.noop"] * 5000, "At most 100 handler names.")):
        response = create(handlers)
        assert response.status_code == 400, handlers[:2]
        assert response.json()["error"]["fields"] == {"handlers": [reason]}
    assert not Rule.objects.exists()
    created = create(["pulse.noop", "pulse.fail", "pulse.noop"])
    assert created.status_code == 201 and created.json()["handlers"] == ["pulse.noop", "pulse.fail"]

    before = rows()
    response = client.patch(f"/api/v1/notifications/rules/{created.json()['id']}/", {"handlers": ["nope.nothere"]},
                            format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["handlers"]
    assert rows() == before


@pytest.mark.parametrize("address, said", [
    ("http://127.0.0.1:9/x", "127.0.0.1 is an internal address; add it to PULSE_HTTP_ALLOWLIST to allow it."),
    ("http://localhost/hook", "localhost resolves to 127.0.0.1, an internal address; add it to PULSE_HTTP_ALLOWLIST"),
    ("https://10.0.0.7/hook", "10.0.0.7 is an internal address;"),
    ("http://[::1]:8080/", "::1 is an internal address;"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is an internal address;"),
    # IPv6 addresses that carry an internal IPv4 one (NAT64, 6to4): a gateway takes them there.
    ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "64:ff9b::a9fe:a9fe carries 169.254.169.254, an internal address;"),
    ("http://[2002:a00:7::]/hook", "2002:a00:7:: carries 10.0.0.7, an internal address;"),
])
def test_a_webhook_to_an_internal_address_is_refused_when_added_not_at_its_first_delivery(
        alice, alice_client, acme, settings, address, said):
    response = session(alice).post("/api/v1/notifications/targets/",
                                   {"name": "inside", "kind": "webhook", "address": address}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["address"][0].startswith(said)
    page = alice_client.post("/notifications/targets/new/", {"name": "inside", "kind": "webhook", "address": address},
                             follow=True)
    assert [str(m) for m in page.context["messages"]][0].startswith(f"address: {said}")
    assert not Target.objects.filter(name="inside").exists()

    settings.PULSE_HTTP_ALLOWLIST = ["127.0.0.1", "10.0.0.0/8", "::1", "169.254.169.254"]
    assert session(alice).post("/api/v1/notifications/targets/", {"name": "inside", "kind": "webhook",
                                                                  "address": address}, format="json").status_code == 201


def test_a_rules_target_of_another_team_or_none_is_a_400_naming_target_and_they_read_alike(
        alice, acme, ops, globex):
    theirs = target_create(team=globex, name="theirs", kind="email", address="c@example.com", by=None)
    client = session(alice)
    rule = rule_create(team=acme, target=ops, kind=Rule.Kind.OVERRUN, by=None)
    before = rows()
    answers = []
    for target_id in (theirs.public_id, "NT_01ARZ3NDEKTSV4RRFFQ69G5FAV", "junk"):
        created = client.post("/api/v1/notifications/rules/", {"target": target_id, "kind": "overrun"},
                              format="json")
        changed = client.patch(f"/api/v1/notifications/rules/{rule.public_id}/", {"target": target_id},
                               format="json")
        for response in (created, changed):
            assert response.status_code == 400, target_id
            answers.append(response.json())
    assert answers == [{"error": {"code": "validation_error", "message": "target: No such notification target in "
                                  "this team.", "fields": {"target": ["No such notification target in this team."]}}}] * 6
    assert rows() == before


def test_a_bad_kind_is_refused_with_the_kinds_to_choose_from(alice, acme, ops):
    response = session(alice).post("/api/v1/notifications/rules/", {"target": ops.public_id, "kind": "job_done"},
                                   format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "kind": ["Choose one of job_failed, budget_threshold, overrun, schedule_broken, held_long."]}
    with pytest.raises(ValidationError) as caught:
        rule_create(team=acme, target=ops, kind="job_done", by=None)
    assert caught.value.fields == response.json()["error"]["fields"]


def test_members_viewers_and_tokens_can_read_but_not_change(bob, vic, acme, acme_api, ops, rule):
    before = rows()
    for client in (session(bob), session(vic), acme_api):
        for url in (f"/api/v1/notifications/targets/{ops.public_id}/", f"/api/v1/notifications/rules/{rule.public_id}/"):
            assert client.get(url).status_code == 200
            assert client.patch(url, {"enabled": False}, format="json").status_code == 403
            assert client.delete(url).status_code == 403
    assert rows() == before


def test_another_teams_targets_and_rules_are_404_and_nothing_changes(charlie, globex, acme, ops, rule):
    mine = target_create(team=globex, name="mine", kind="email", address="c@example.com", by=None)
    mine_rule = rule_create(team=globex, target=mine, kind=Rule.Kind.OVERRUN, by=None)
    before = rows()
    client = session(charlie)
    for url in (f"/api/v1/notifications/targets/{ops.public_id}/", f"/api/v1/notifications/rules/{rule.public_id}/"):
        assert client.get(url).status_code == 404
        response = client.patch(url, {"enabled": False}, format="json")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert client.delete(url).status_code == 404
    # Pointing his own rule at Acme's target names a target his team does not have.
    response = client.patch(f"/api/v1/notifications/rules/{mine_rule.public_id}/", {"target": ops.public_id},
                            format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["target"]
    assert rows() == before


# --- The page -------------------------------------------------------------------------------------


def test_the_page_edits_disables_and_deletes_targets_and_rules(alice_client, acme, ops, rule):
    assert alice_client.post(f"/notifications/targets/{ops.public_id}/edit/",
                             {"name": "on-call", "kind": "email", "address": "oncall@example.com"}).status_code == 302
    assert alice_client.post(f"/notifications/targets/{ops.public_id}/enabled/", {"enabled": "0"}).status_code == 302
    target = Target.objects.get(pk=ops.pk)
    assert (target.name, target.address, target.enabled) == ("on-call", "oncall@example.com", False)

    alice_client.post(f"/notifications/rules/{rule.public_id}/edit/", {"target": ops.public_id, "minutes": "45",
                                                                        "handlers": ["pulse.noop"]})
    alice_client.post(f"/notifications/rules/{rule.public_id}/enabled/", {"enabled": "0"})
    saved = Rule.objects.get(pk=rule.pk)
    assert (saved.minutes, saved.handlers, saved.enabled) == (45, ["pulse.noop"], False)
    page = alice_client.get("/notifications/").content.decode()
    assert "Enable" in page and "(N = 45)" in page

    alice_client.post(f"/notifications/rules/{rule.public_id}/delete/")
    assert not Rule.objects.exists()
    alice_client.post(f"/notifications/targets/{ops.public_id}/delete/")
    assert not Target.objects.exists()


def test_the_page_adds_and_edits_a_failure_rule_for_some_error_codes(alice_client, acme, ops):
    alice_client.post("/notifications/rules/new/", {"kind": "job_failed", "target": ops.public_id,
                                                "error_codes": ["worker_lost", "timeout"], "final_only": "on"})
    rule = Rule.objects.get(team=acme)
    assert rule.error_codes == ["timeout", "worker_lost"]
    assert "with timeout or worker_lost" in alice_client.get("/notifications/").content.decode()
    alice_client.post(f"/notifications/rules/{rule.public_id}/edit/", {"target": ops.public_id,
                                                                        "error_codes": ["budget_exceeded"]})
    assert Rule.objects.get(pk=rule.pk).error_codes == ["budget_exceeded"]
    refused = alice_client.post(f"/notifications/rules/{rule.public_id}/edit/", {"target": ops.public_id,
                                                                                  "error_codes": ["nope"]}, follow=True)
    assert "error_codes" in refused.content.decode() and Rule.objects.get(pk=rule.pk).error_codes == ["budget_exceeded"]


def test_a_bad_edit_on_the_page_says_why_and_changes_nothing(alice_client, acme, ops, rule):
    before = rows()
    response = alice_client.post(f"/notifications/targets/{ops.public_id}/edit/",
                                 {"name": "ops", "kind": "webhook", "address": "ops@example.com"}, follow=True)
    assert "An http(s) URL." in response.content.decode()
    response = alice_client.post(f"/notifications/rules/{rule.public_id}/edit/",
                                 {"target": ops.public_id, "minutes": "soon"}, follow=True)
    assert "A whole number of minutes" in response.content.decode()
    assert rows() == before


def rule_form_error(response, field: str) -> str:
    """The error the page shows under the new-rule form's `field` (empty: none)."""
    body = response.content.decode()
    marker = f'<ul class="errorlist" id="rule-error-{field}"><li>'
    return html.unescape(body.split(marker, 1)[1].split("</li>", 1)[0]) if marker in body else ""


def test_the_new_rule_form_without_a_target_is_shown_again_with_the_error_under_target(alice_client, acme, ops):
    response = alice_client.post("/notifications/rules/new/", {"kind": "held_long", "minutes": "30"})
    assert response.status_code == 400
    assert rule_form_error(response, "target") == "No such notification target in this team."
    body = response.content.decode()
    assert '<option value="held_long" selected>' in body and 'name="minutes" type="number" min="1" max="10080" value="30"' in body
    assert not Rule.objects.exists()


def test_a_refused_new_target_is_shown_again_as_typed_with_the_reason_under_its_field(alice_client, acme):
    """The new-target form came back empty after a refusal (a redirect), the reason only in the
    banner: the name, the kind and the address had to be typed again to fix one of them."""
    response = alice_client.post("/notifications/targets/new/", {"name": "Ops hook", "kind": "webhook",
                                                                 "address": "http://127.0.0.1:9/x"})
    assert response.status_code == 400
    body = response.content.decode()
    marker = '<ul class="errorlist" id="target-error-address"><li>'
    assert marker in body
    assert html.unescape(body.split(marker, 1)[1].split("</li>", 1)[0]).startswith("127.0.0.1 is an internal address;")
    assert 'id="t-name" name="name" maxlength="100" required value="Ops hook"' in body
    assert '<option value="webhook" selected>' in body
    assert ('id="t-address" name="address" maxlength="500" required value="http://127.0.0.1:9/x" '
            'aria-invalid="true" aria-describedby="target-error-address"') in body
    assert not Target.objects.exists()


def test_a_refused_target_edit_is_shown_again_open_as_typed_with_the_reason_under_its_field(alice_client, acme, ops):
    """The edit form folded shut again after a refusal (a redirect), showing the stored values:
    what was typed to change the target was gone, the reason only in the banner."""
    before = rows()
    response = alice_client.post(f"/notifications/targets/{ops.public_id}/edit/",
                                 {"name": "Ops pager", "kind": "webhook", "address": "http://example.com:70000/"})
    assert response.status_code == 400
    body = response.content.decode()
    edit = body.split(f'action="/notifications/targets/{ops.public_id}/edit/"', 1)[0].rsplit("<details", 1)[1]
    assert edit.startswith(' class="target-edit" open>')
    form = body.split(f'action="/notifications/targets/{ops.public_id}/edit/"', 1)[1].split("</form>", 1)[0]
    assert 'name="name" value="Ops pager"' in form and '<option value="webhook" selected>' in form
    assert ('name="address" value="http://example.com:70000/" maxlength="500" required aria-invalid="true" '
            f'aria-describedby="target-error-{ops.public_id}-address"') in form
    assert f'<ul class="errorlist" id="target-error-{ops.public_id}-address"><li>An http(s) URL.</li></ul>' in form
    assert "address: An http(s) URL." in body  # and in the banner, as before
    assert rows() == before


def test_the_new_rule_form_refuses_what_the_api_refuses_under_each_field(alice_client, acme, ops, globex):
    theirs = target_create(team=globex, name="theirs", kind="email", address="c@example.com", by=None)
    for data, field, reason in (
            ({"target": theirs.public_id, "kind": "job_failed"}, "target", "No such notification target in this team."),
            ({"target": ops.public_id, "kind": "job_failed", "minutes": "5"}, "minutes",
             "Only held_long rules take minutes; a job_failed rule has none."),
            ({"target": ops.public_id, "kind": "job_failed", "handlers": ["nope.nothere"]}, "handlers",
             "Unknown handler 'nope.nothere'."),
            ({"target": ops.public_id, "kind": "job_done"}, "kind",
             "Choose one of job_failed, budget_threshold, overrun, schedule_broken, held_long.")):
        response = alice_client.post("/notifications/rules/new/", data)
        assert response.status_code == 400, data
        assert rule_form_error(response, field) == reason, data
    assert not Rule.objects.exists()


def test_a_rule_edit_on_the_page_naming_no_target_of_the_team_says_so_and_changes_nothing(alice_client, acme, ops,
                                                                                          rule):
    before = rows()
    response = alice_client.post(f"/notifications/rules/{rule.public_id}/edit/", {"minutes": "45"}, follow=True)
    assert response.status_code == 200 and "No such notification target in this team." in response.content.decode()
    assert rows() == before


def test_the_page_shows_a_webhooks_secret_to_owners_only_and_rotates_it(alice_client, bob_client, acme):
    hook = target_create(team=acme, name="hook", kind="webhook", address="https://example.com/hook", by=None)
    assert hook.secret in alice_client.get("/notifications/").content.decode()
    assert hook.secret not in bob_client.get("/notifications/").content.decode()
    alice_client.post(f"/notifications/targets/{hook.public_id}/rotate/")
    assert Target.objects.get(pk=hook.pk).secret != hook.secret


@pytest.mark.parametrize("who", ["bob_client", "vic_client"])
def test_members_and_viewers_see_no_buttons_and_are_refused(who, request, acme, ops, rule):
    client = request.getfixturevalue(who)
    page = client.get("/notifications/").content.decode()
    assert "ops@example.com" in page and "Delete" not in page and "Disable" not in page
    before = rows()
    for path, data in ((f"/notifications/targets/{ops.public_id}/edit/", {"name": "x", "kind": "email",
                                                                           "address": "x@example.com"}),
                       (f"/notifications/targets/{ops.public_id}/enabled/", {"enabled": "0"}),
                       (f"/notifications/targets/{ops.public_id}/rotate/", {}),
                       (f"/notifications/targets/{ops.public_id}/delete/", {}),
                       (f"/notifications/rules/{rule.public_id}/edit/", {"target": ops.public_id, "minutes": "1"}),
                       (f"/notifications/rules/{rule.public_id}/enabled/", {"enabled": "0"}),
                       (f"/notifications/rules/{rule.public_id}/delete/", {})):
        assert client.post(path, data).status_code == 403, path
    assert rows() == before


def test_charlies_page_posts_on_acmes_targets_and_rules_are_404(charlie_client, globex, acme, ops, rule):
    before = rows()
    for path in (f"/notifications/targets/{ops.public_id}/edit/", f"/notifications/targets/{ops.public_id}/enabled/",
                 f"/notifications/targets/{ops.public_id}/rotate/", f"/notifications/targets/{ops.public_id}/delete/",
                 f"/notifications/rules/{rule.public_id}/edit/", f"/notifications/rules/{rule.public_id}/enabled/",
                 f"/notifications/rules/{rule.public_id}/delete/"):
        assert charlie_client.post(path, {"enabled": "0", "name": "x", "kind": "email", "address": "x@example.com",
                                          "target": ops.public_id, "minutes": "1"}).status_code == 404, path
    assert rows() == before


# --- Admin ----------------------------------------------------------------------------------------


def test_staff_list_every_teams_targets_rules_and_hold_timers(admin_client, acme, ops, rule):
    from django.urls import reverse

    from jobs.services import job_pause, job_submit
    from pulse_site.notifications.services import notifications_match

    notifications_match()
    job = job_pause(job=job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job, by="alice")
    notifications_match()
    assert "ops@example.com" in admin_client.get(reverse("admin:notifications_target_changelist")).content.decode()
    assert "A job was held longer than N minutes" in admin_client.get(reverse("admin:notifications_rule_changelist")).content.decode()
    timers = admin_client.get(reverse("admin:notifications_holdtimer_changelist")).content.decode()
    assert job.public_id in timers
    assert admin_client.get(reverse("admin:notifications_holdtimer_add")).status_code == 403


def test_every_bad_field_of_a_rule_is_named_at_once(alice, acme, ops):
    response = session(alice).post("/api/v1/notifications/rules/", {
        "target": "NT_nope", "kind": "job_failed", "handlers": ["nope.nothere"], "minutes": 5,
        "error_codes": ["disk_full"]}, format="json")
    assert response.status_code == 400
    assert sorted(response.json()["error"]["fields"]) == ["error_codes", "handlers", "minutes", "target"]
    assert not Rule.objects.exists()


def test_a_webhook_url_with_a_port_out_of_range_is_refused_on_its_field_and_nothing_changes(alice, alice_client,
                                                                                            acme, ops):
    client = session(alice)
    before = rows()
    created = client.post("/api/v1/notifications/targets/", {"name": "hook", "kind": "webhook",
                                                            "address": "https://example.com:99999/hook"}, format="json")
    changed = client.patch(f"/api/v1/notifications/targets/{ops.public_id}/",
                           {"kind": "webhook", "address": "http://example.com:65536/"}, format="json")
    for response in (created, changed):
        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {"address": ["An http(s) URL."]}
    page = alice_client.post("/notifications/targets/new/", {"name": "hook", "kind": "webhook",
                                                             "address": "http://example.com:70000/"}, follow=True)
    assert "address: An http(s) URL." in page.content.decode()
    assert rows() == before


def test_minutes_that_are_digits_but_no_number_are_refused_on_the_page_not_a_500(alice_client, acme, ops, rule):
    before = rows()
    for minutes in ("²", "五"):
        edited = alice_client.post(f"/notifications/rules/{rule.public_id}/edit/",
                                   {"target": ops.public_id, "minutes": minutes}, follow=True)
        assert edited.status_code == 200, minutes
        assert "A whole number of minutes from 1 to 10080." in edited.content.decode(), minutes
        added = alice_client.post("/notifications/rules/new/", {"target": ops.public_id, "kind": "held_long",
                                                                "minutes": minutes})
        assert added.status_code == 400, minutes
        assert rule_form_error(added, "minutes") == "A whole number of minutes from 1 to 10080.", minutes
    assert rows() == before


def test_the_page_tells_owners_how_to_check_a_webhook_and_what_its_body_holds(alice_client, acme):
    help_text = html.unescape(alice_client.get("/notifications/").content.decode()).split('id="target-add"', 1)[1]
    for said in ('X-Pulse-Signature: sha256=HMAC-SHA256(secret, timestamp + "." + body)',
                 "<code>delivery</code> (the same on every retry)", "<code>event</code> (<code>id</code>"):
        assert said in help_text, said


def test_with_no_target_the_rules_say_a_target_comes_first_to_those_who_may_add_one(alice_client, bob_client, acme):
    # The rule form needs a target to tell: without one it is not shown, and the page said only
    # "No rules", leaving an owner looking for a way to add one.
    owners = alice_client.get("/notifications/").content.decode()
    assert 'No rules yet. A rule tells a target: <a href="#t-name">add a target</a> above first, then a rule here.' in owners
    assert 'id="rule-add"' not in owners
    members = bob_client.get("/notifications/").content.decode()
    assert "No rules: targets only get test sends." in members
    assert "add a target above first" not in members
