"""The overview's recent events: a sentence for each event people watch, links to what they are
about, progress and log lines only when asked for, and only the caller's team's events."""

from __future__ import annotations

import pytest

from pulse_site.activity import activity_text
from pulse_site.live.selectors import Audience
from pulse_site.live.services import event_emit

pytestmark = pytest.mark.django_db

JOB = {"handler": "demo.report", "attempts": 1, "max_attempts": 3, "cost_actual": "0.07", "error": None,
       "hold_reasons": []}


@pytest.mark.parametrize(("kind", "payload", "text"), [
    ("job.created", JOB, "demo.report queued"),
    ("job.started", JOB, "demo.report started, attempt 1 of 3"),
    ("job.completed", JOB, "demo.report completed, cost 0.07"),
    ("job.created", {**JOB, "created_by": "token ci"}, "demo.report queued by token ci"),
    ("job.created", {**JOB, "created_by": ""}, "demo.report queued"),
    ("job.cancelled", {**JOB, "by": "alice"}, "demo.report cancelled by alice"),
    ("job.paused", {**JOB, "by": "alice", "hold_reasons": [{"kind": "manual", "message": "Held by alice"}]},
     "demo.report held: Held by alice."),
    ("job.failed", {**JOB, "error": {"code": "network_error", "message": "reset by peer"}},
     "demo.report failed: network_error: reset by peer"),
    ("job.paused", {**JOB, "hold_reasons": [{"kind": "budget", "message": "Over the daily limit of 0.5."}]},
     "demo.report held: Over the daily limit of 0.5."),
    ("job.progress", {"current": 3, "total": 7, "message": "analyse: trends"}, "3/7 analyse: trends"),
    ("job.log", {"stage": "collect", "task": "orders", "level": "warning", "message": "slow"},
     "[collect / orders] warning: slow"),
    ("execution.skipped", {"trigger": "cron", "reason": "the last run is unfinished", "job": None},
     "Run skipped (cron): the last run is unfinished"),
    ("execution.skipped", {"trigger": "cron", "reason": "Skipped: the run of JB_1 is still paused.", "job": None},
     "Run skipped (cron): the run of JB_1 is still paused."),
    ("execution.fired", {"trigger": "cron", "reason": "", "job": "JB_1"}, "Run fired (cron), job JB_1"),
    ("execution.fired", {"trigger": "cron", "reason": "", "job": "JB_1", "fire_time": "2026-12-06T15:40:00+00:00",
                         "created_at": "2026-12-06T15:39:12.250000+00:00"}, "Run queued (cron), starts at its slot in 47.8 s, job JB_1"),
    ("execution.fired", {"trigger": "manual", "reason": "", "job": "JB_1", "fire_time": "2026-12-06T15:40:00+00:00",
                         "created_at": "2026-12-06T15:40:00.400000+00:00"}, "Run fired (manual), job JB_1"),
    ("execution.fired", {"trigger": "cron", "job": "JB_1", "fire_time": "soon", "created_at": None}, "Run fired (cron), job JB_1"),
    ("schedule.broken", {"name": "Nightly", "broken_reason": "Unknown handler 'x'."},
     "Schedule Nightly broken: Unknown handler 'x'."),
    ("schedule.changed", {"name": "Nightly", "change": "created", "by": "alice"}, "Schedule Nightly created by alice"),
    ("schedule.changed", {"name": "Nightly", "change": "updated", "fields": ["enabled"], "enabled": False, "by": "bob"},
     "Schedule Nightly paused by bob"),
    ("schedule.changed", {"name": "Nightly", "change": "updated", "fields": ["enabled"], "enabled": True, "by": "bob"},
     "Schedule Nightly resumed by bob"),
    ("schedule.changed", {"name": "Nightly", "change": "updated", "fields": ["cron", "time_zone"], "by": "token ci"},
     "Schedule Nightly: cron, time zone changed by token ci"),
    ("schedule.changed", {"name": "Nightly", "change": "updated", "fields": ["cron", "payload", "enabled", "estimate_override"],
                          "before": {"cron": "0 3 * * *", "enabled": True, "estimate_override": None},
                          "cron": "0 4 * * 1-5", "enabled": False, "estimate_override": "0.25", "by": "alice"},
     "Schedule Nightly changed by alice: cron “0 3 * * *” → “0 4 * * 1-5”, payload, enabled “true” → “false”, "
     "estimate override none → “0.25”"),
    ("schedule.changed", {"name": "Nightly", "change": "updated"}, "Schedule Nightly changed"),
    ("schedule.deleted", {"name": "Nightly", "by": "alice"}, "Schedule Nightly deleted by alice"),
    ("schedule.over_budget", {"name": "Nightly", "reason": "Over the team's daily limit of 0.5."},
     "Schedule Nightly runs are refused by the budget: Over the team's daily limit of 0.5."),
    ("budget.alert", {"threshold": 80, "message": "The team has spent 0.4 of its daily limit of 0.5 (80 % reached)."},
     "The team has spent 0.4 of its daily limit of 0.5 (80 % reached)."),
    ("member.added", {"username": "bob", "role": "member"}, "bob added as member"),
    ("member.changed", {"username": "bob", "role": "admin", "by": "alice"}, "alice made bob admin"),
    ("member.changed", {"username": "bob", "role": "viewer", "by": ""}, "bob is now viewer"),
    ("token.revoked", {"name": "ci", "by": "alice"}, "Token ci revoked by alice"),
    ("member.removed", {"username": "bob", "role": "member"}, "bob removed"),
    ("token.created", {"name": "ci", "access": "write", "prefix": "pulse_ab"}, "Token ci (write) created"),
    ("budget.policy", {"by": "alice", "before": {"daily_limit": None, "max_concurrent": 2},
                       "after": {"daily_limit": "0.5", "max_concurrent": 2}}, "alice changed daily_limit unlimited → 0.5"),
    ("budget.policy", {"by": "admin root",
                       "before": {"monthly_limit": "1500", "alert_thresholds": [80, 100], "time_zone": "Europe/Paris"},
                       "after": {"monthly_limit": None, "alert_thresholds": [50, 80, 100], "time_zone": ""}},
     "admin root changed alert_thresholds 80, 100 % → 50, 80, 100 %, monthly_limit 1,500 → unlimited, "
     "time_zone Europe/Paris → the team's"),
    ("budget.policy", {"by": "alice",
                       "before": {"handler_caps": {"pulse.sleep": {"daily": "1.5", "weekly": None, "monthly": None}}},
                       "after": {"handler_caps": {"pulse.sleep": {"daily": "1.5", "weekly": None, "monthly": "2000"}}}},
     "alice changed handler_caps.pulse.sleep daily 1.5 · weekly unlimited · monthly unlimited → "
     "daily 1.5 · weekly unlimited · monthly 2,000"),
    ("budget.override", {"amount": "2500", "expires_at": "2026-12-07T18:30:00+01:00", "reason": "Quarter close",
                         "by": "alice"}, "Override of up to 2,500 until 2026-12-07 17:30 UTC created by alice: Quarter close"),
    ("budget.override_used", {"job": "JB_01ABC", "amount": "0.3", "reasons": []},
     "Override let JB_01ABC start, using 0.3 of it"),
    ("budget.override_ended", {"by": "admin root"}, "Override ended by admin root"),
    ("budget.overrun", {"job": "JB_01ABC", "handler": "demo.report", "attempt": 2, "estimate": "0.12",
                        "actual": "1200.5", "over_by": "1200.38"},
     "demo.report cost 1,200.5, 1,200.38 over its estimate of 0.12 (attempt 2)"),
    ("budget.drift", {"drifts": [{"scope": "", "window": "day"}, {"running_was": 3, "running": 1}]},
     "Budget counts repaired against the ledger (2 corrected)"),
    ("team.retention", {"by": "operator", "before": {"job_retention_days": 30}, "after": {"job_retention_days": 7}},
     "operator changed job_retention_days 30 → 7"),
    ("queue.paused", {"reason": "deploy", "handler": None, "by": "alice"}, "The queue paused by alice: deploy"),
    ("queue.resumed", {"reason": "deploy", "handler": "demo.report", "by": "alice", "ended_by": "bob"},
     "Handler demo.report resumed by bob"),
    ("job.log", {"message": "x" * 500}, "info: " + "x" * 153 + "…"),
    ("notification.target_added", {"name": "Ops", "kind": "webhook", "enabled": True, "by": "alice"},
     "Target Ops (webhook) added by alice"),
    ("notification.target_changed", {"name": "Ops", "kind": "webhook", "enabled": False, "by": "token ci",
                                     "changed": ["address", "enabled", "secret"]},
     "Target Ops: address, disabled, signing secret changed by token ci"),
    ("notification.target_removed", {"name": "Ops", "kind": "email", "by": "bob"}, "Target Ops removed by bob"),
    ("notification.rule_added", {"rule": "job_failed", "target": "Ops", "by": "alice"},
     "Rule job_failed → Ops added by alice"),
    ("notification.rule_changed", {"rule": "held_long", "target": "Ops", "enabled": True, "changed": ["minutes"],
                                   "by": "alice"}, "Rule held_long → Ops: minutes changed by alice"),
])
def test_each_event_reads_as_what_happened(kind, payload, text):
    assert activity_text(kind, payload) == text


def test_the_page_links_subjects_and_leaves_progress_and_logs_out_until_asked(alice_client, acme):
    event_emit(team=acme, kind="job.created", subject="JB_01ABC", payload=JOB)
    event_emit(team=acme, kind="execution.fired", subject="EX_01ABC", payload={"schedule": "SP_01ABC", "job": None})
    event_emit(team=acme, kind="job.log", subject="JB_01ABC", payload={"level": "info", "message": "line one"})
    page = alice_client.get("/").content.decode()
    assert '<a href="/jobs/JB_01ABC/">JB_01ABC</a>' in page and '<a href="/schedules/SP_01ABC/">EX_01ABC</a>' in page
    assert "line one" not in page
    assert "info: line one" in alice_client.get("/?events=all").content.decode()


def test_members_and_tokens_are_named_and_team_events_link_the_page_that_shows_them(alice_client, acme, bob):
    page = alice_client.get("/").content.decode()
    # acme's own fixture added bob (user id in the subject): the row names him, linked to the team page.
    assert '<a href="/team/">bob</a>' in page and f">{bob.pk}</a>" not in page
    event_emit(team=acme, kind="token.created", subject="TK_01ABC", payload={"name": "ci", "access": "write"})
    event_emit(team=acme, kind="budget.alert", subject="team", payload={"message": "80 % reached."})
    event_emit(team=acme, kind="queue.paused", subject="QP_01ABC", payload={"reason": "deploy", "by": "alice"})
    page = alice_client.get("/").content.decode()
    assert '<a href="/team/">ci</a>' in page
    assert '<a href="/budget/">team</a>' in page and '<a href="/queue/">QP_01ABC</a>' in page


def test_the_rows_after_an_event_are_the_callers_teams_only(alice_client, charlie_client, acme, globex):
    first = event_emit(team=acme, kind="job.created", subject="JB_01A", payload=JOB)
    second = event_emit(team=acme, kind="job.completed", subject="JB_01A", payload=JOB)
    event_emit(team=globex, kind="job.created", subject="JB_01G", payload={**JOB, "handler": "globex.secret"})
    body = alice_client.get(f"/overview/activity/?after={first.id}").content.decode()
    assert f'data-event-id="{second.id}"' in body and f'data-event-id="{first.id}"' not in body
    assert "globex.secret" not in body
    theirs = charlie_client.get("/overview/activity/?after=0").content.decode()
    assert "globex.secret" in theirs and "JB_01A" not in theirs
    assert alice_client.get("/overview/activity/?after=x").status_code == 400


def test_without_progress_and_logs_only_the_newest_events_are_looked_through(alice_client, acme, monkeypatch):
    """A daemon logging all day must not make the overview read back through all its lines."""
    from pulse_site import activity

    monkeypatch.setattr(activity, "SCAN", 5)
    event_emit(team=acme, kind="job.created", subject="JB_01OLD", payload=JOB)
    for n in range(5):
        event_emit(team=acme, kind="job.log", subject="JB_01D", payload={"message": f"line {n}"})
    assert activity.activity_rows(team=acme, audience=Audience(sees_tokens=True)) == []
    page = alice_client.get("/").content.decode()
    assert "JB_01OLD" not in page and "Only progress and log lines lately" in page
    assert "line 4" in alice_client.get("/?events=all").content.decode()
