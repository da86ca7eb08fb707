"""The notifications page in a browser: an owner adds a webhook target and a rule, sends a test
and finds the delivery (signed, received) in the target's history; a viewer sees the same page
without a single control that changes anything."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.db import connection
from playwright.sync_api import expect

import jobs.runner
from jobs.models import Job
from pulse_site.notifications.models import Rule, Target

pytestmark = pytest.mark.browser


@pytest.fixture
def receiver(settings) -> Iterator[dict]:
    """A webhook receiver on 127.0.0.1 (allow-listed, as internal addresses are refused otherwise)
    that answers 204 and records every request."""
    settings.PULSE_HTTP_ALLOWLIST = ["127.0.0.1"]
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}/hook", "received": received}
    server.shutdown()
    server.server_close()


def run_delivery(job_id: str) -> None:
    """The real worker code path for the queued delivery, in a thread (the browser tests' server
    runs no worker, and the test's own thread is inside Playwright's event loop)."""
    thread = threading.Thread(target=lambda: (jobs.runner.run_job(job_id), connection.close()), daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the delivery did not finish within 30 s"


def test_an_owner_adds_a_webhook_and_a_rule_sends_a_test_and_sees_it_delivered(page, login_as, alice, acme,
                                                                                 receiver):
    login_as(alice)
    page.goto("/notifications/")
    expect(page.locator("#targets")).to_contain_text("No targets yet.")

    form = page.locator("#target-add")
    form.get_by_label("Name").fill("ops hook")
    form.get_by_label("Kind").select_option("webhook")
    form.get_by_label("Email address or webhook URL").fill(receiver["url"])
    form.get_by_role("button", name="Add").click()
    expect(page.get_by_text("Target added.")).to_be_visible()
    target = Target.objects.get(team=acme, name="ops hook")
    card = page.locator(f"#target-{target.public_id}")
    expect(card).to_contain_text(receiver["url"])
    expect(card).to_contain_text("Nothing delivered yet.")

    rule_form = page.locator("#rule-add")
    rule_form.get_by_label("When").select_option("job_failed")
    rule_form.get_by_label("Tell").select_option(target.public_id)
    rule_form.get_by_role("button", name="Add rule").click()
    expect(page.get_by_text("Rule added.")).to_be_visible()
    rule = Rule.objects.get(team=acme)
    assert (rule.kind, rule.target_id, rule.final_only) == ("job_failed", target.pk, True)
    expect(page.locator(f"#rule-{rule.public_id}")).to_contain_text("A job failed")
    expect(page.locator(f"#rule-{rule.public_id}")).to_contain_text("ops hook")

    card.get_by_role("button", name="Send test").click()
    queued = page.get_by_text("Test queued as")
    expect(queued).to_be_visible()
    job = Job.objects.get(team=acme, handler="pulse.notify", origin=target.public_id)
    expect(queued).to_contain_text(job.public_id)
    row = page.locator(f"#target-{target.public_id} tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(job.public_id)
    expect(row).to_contain_text("Queued")

    run_delivery(job.public_id)
    [request] = receiver["received"]
    assert request["path"] == "/hook"
    target.refresh_from_db()
    timestamp = request["headers"]["X-Pulse-Timestamp"]
    expected = hmac.new(target.secret.encode(), timestamp.encode() + b"." + request["body"], hashlib.sha256)
    assert request["headers"]["X-Pulse-Signature"] == f"sha256={expected.hexdigest()}"
    assert json.loads(request["body"])["subject"] == "Pulse test notification for ops hook"

    page.reload()
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Completed")
    expect(row).to_contain_text("Pulse test notification for ops hook")
    row.get_by_role("link", name=job.public_id).click()
    page.wait_for_url(f"**/jobs/{job.public_id}/")


def test_a_viewer_sees_targets_rules_and_deliveries_but_no_control(page, login_as, vic, alice, acme, receiver):
    from pulse_site.notifications import services

    owner = acme.memberships.get(user=alice)
    target = services.target_create(team=acme, name="ops hook", kind="webhook", address=receiver["url"], by=owner,
                                    created_by="alice")
    rule = services.rule_create(team=acme, target=target, kind="job_failed", by=owner)
    delivery = services.target_send_test(target=target, by="alice", member=owner)

    login_as(vic)
    page.goto("/notifications/")
    expect(page.locator(f"#target-{target.public_id}")).to_contain_text("ops hook")
    expect(page.locator(f"#target-{target.public_id} tbody tr")).to_contain_text(delivery.public_id)
    expect(page.locator(f"#rule-{rule.public_id}")).to_contain_text("A job failed")
    for name in ("Send test", "Disable", "Delete", "Rotate secret", "Add", "Add rule", "Save"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    # No form at all in either section, no edit disclosure, and the secret is not on the page.
    expect(page.locator("#targets form, #rules form, #targets details, #rules details")).to_have_count(0)
    assert target.secret not in page.content()


def test_on_a_phone_a_targets_name_and_buttons_sit_inside_its_box_and_its_buttons_apart(page, login_as, alice, acme):
    """Each target's name was drawn against the box's edge, and on a phone its three buttons (and a
    rule's two) were stacked touching, one press away from the wrong one."""
    from pulse_site.notifications import services

    owner = acme.memberships.get(user=alice)
    target = services.target_create(team=acme, name="ops hook", kind="webhook", address="https://hooks.example.com/a",
                                    by=owner)
    rule = services.rule_create(team=acme, target=target, kind="job_failed", by=owner)
    page.set_viewport_size({"width": 320, "height": 640})
    login_as(alice)
    page.goto("/notifications/")
    box = page.locator("#targets").bounding_box()
    name = page.locator(f"#target-{target.public_id} h3").bounding_box()
    assert box and name and name["x"] - box["x"] >= 8
    for buttons in (f"#target-{target.public_id} form button", f"#rule-{rule.public_id} form > button"):
        boxes = [b for b in (page.locator(buttons).nth(n).bounding_box() for n in range(page.locator(buttons).count()))
                 if b]
        assert len(boxes) >= 2, buttons
        for one, other in zip(boxes, boxes[1:]):
            apart = max(other["x"] - (one["x"] + one["width"]), other["y"] - (one["y"] + one["height"]),
                        one["x"] - (other["x"] + other["width"]))
            assert apart >= 4, f"{buttons}: {one} and {other} touch"
