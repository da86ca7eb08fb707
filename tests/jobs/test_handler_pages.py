"""The handlers pages: every handler the deployment ships, what it takes, costs and retries, and
the team's own jobs of it; another team's jobs never count."""

from __future__ import annotations

import pytest

from budgets.services import budget_policy_update
from jobs.handlers.registry import get_handler, registered_handlers
from jobs.models import QueuePause
from jobs.pausing import queue_pause
from jobs.runner import run_job

pytestmark = pytest.mark.django_db


def _summaries(client) -> dict:
    response = client.get("/handlers/")
    assert response.status_code == 200
    return {s.handler.name: s for s in response.context["summaries"]}


def test_the_list_shows_every_handler_with_the_teams_own_jobs(alice_client, charlie_client, submit, globex):
    done = submit("pulse.noop")
    run_job(done.public_id)
    failed = submit("pulse.fail", {"code": "validation_error"})
    run_job(failed.public_id)
    submit("pulse.sleep", {"steps": 1})
    submit("pulse.sleep", {"steps": 1}, team=globex)

    mine = _summaries(alice_client)
    assert set(mine) == {h.name for h in registered_handlers()}
    noop, fail, sleep = mine["pulse.noop"], mine["pulse.fail"], mine["pulse.sleep"]
    assert (noop.completed, noop.failed, noop.success_rate) == (1, 0, 100.0)
    assert (fail.completed, fail.failed, fail.success_rate) == (0, 1, 0.0)
    assert (sleep.queued, sleep.completed, sleep.success_rate) == (1, 0, None)
    assert noop.timing is not None and noop.timing.jobs == 1

    theirs = _summaries(charlie_client)
    assert theirs["pulse.sleep"].queued == 1
    assert [(n, s.completed, s.failed) for n, s in theirs.items() if s.completed or s.failed] == []

    body = alice_client.get("/handlers/").content.decode()
    assert "Build a report" in body and "estimated <span class=\"quiet\">from the payload</span>" in body
    assert 'href="/jobs/?handler=pulse.fail&amp;status=failed"' in body


def test_a_handlers_page_documents_its_payload_retries_and_cost(alice_client):
    response = alice_client.get("/handlers/pulse.fail/")
    assert response.status_code == 200
    fields = {f.key: f for f in response.context["fields"]}
    assert list(fields) == ["code", "message", "delay", "retryable"]
    assert fields["code"].rules.startswith('one of "ai_error", "database_error", ') and fields["code"].default == '"unknown"'
    assert fields["message"].rules == "at most 1000 characters"
    assert fields["delay"].rules == "at least 0; at most 600" and fields["delay"].type == "number"
    assert fields["retryable"].default is None and not fields["retryable"].required
    body = response.content.decode()
    assert "No other fields are accepted." in body
    handler = get_handler("pulse.fail")
    assert response.context["retry_on"] == sorted(handler.retry_on)
    for code in handler.retry_on:
        assert f"<code>{code}</code>" in body
    assert "backoff from 1 s, doubling, at most 600 s" in body
    assert 'href="/jobs/new/?handler=pulse.fail"' in body and 'href="/schedules/new/?handler=pulse.fail"' in body

    report = alice_client.get("/handlers/demo.report/").content.decode()
    assert "Estimated from the payload: 0.01 per task (7 tasks) plus 0.05 to publish." in report
    required = alice_client.get("/handlers/http.request/").context["fields"]
    assert [(f.key, f.required) for f in required if f.required] == [("url", True)]


def test_a_viewer_reads_the_page_without_the_submit_links(vic_client):
    body = vic_client.get("/handlers/pulse.fail/").content.decode()
    assert "No other fields are accepted." in body
    assert "/jobs/new/?handler=" not in body and "/schedules/new/?handler=" not in body


def test_an_unknown_handler_is_a_404(alice_client):
    for name in ("no.such.handler", "pulse.noop%00", "<script>"):
        assert alice_client.get(f"/handlers/{name}/").status_code == 404


def test_the_teams_cap_and_an_operators_pause_show_only_where_they_apply(alice_client, charlie_client, acme):
    budget_policy_update(team=acme, changes={"handler_caps": {"pulse.sleep": {"daily": "1.5", "monthly": "20"}}},
                         by=None)
    queue_pause(scope=QueuePause.Scope.HANDLER, handler="pulse.sleep", reason="disk replaced", by="operator")

    mine = _summaries(alice_client)["pulse.sleep"]
    assert mine.cap_text == "1.5 a day, 20 a month"
    body = alice_client.get("/handlers/pulse.sleep/").content.decode()
    assert "1.5 a day, 20 a month" in body and "disk replaced" in body

    theirs = _summaries(charlie_client)["pulse.sleep"]
    assert theirs.cap is None and theirs.pause is not None  # an operator's pause holds every team


def test_a_new_schedule_from_a_handlers_page_starts_with_that_handler(alice_client):
    form = alice_client.get("/schedules/new/?handler=pulse.sleep").context["form"]
    assert form["handler"].value() == "pulse.sleep"
    assert alice_client.get("/schedules/new/?handler=nope").status_code == 200


def test_a_jobs_page_links_its_handler_while_the_deployment_has_it(alice_client, submit):
    job = submit("pulse.sleep", {"steps": 1})
    assert 'href="/handlers/pulse.sleep/"' in alice_client.get(f"/jobs/{job.public_id}/").content.decode()
    job.__class__.objects.filter(pk=job.pk).update(handler="retired.handler")
    body = alice_client.get(f"/jobs/{job.public_id}/").content.decode()
    assert "retired.handler" in body and "/handlers/retired.handler/" not in body


def test_the_failures_of_the_last_day_are_broken_down_by_error_code_with_links(alice_client, charlie_client, submit,
                                                                               globex):
    for code in ("network_error", "parse_error", "network_error"):
        run_job(submit("pulse.fail", {"code": code, "retryable": False}).public_id)
    run_job(submit("pulse.fail", {"code": "timeout", "retryable": False}, team=globex).public_id)
    assert _summaries(alice_client)["pulse.fail"].failures == (("network_error", 2), ("parse_error", 1))
    assert _summaries(charlie_client)["pulse.fail"].failures == (("timeout", 1),)
    body = alice_client.get("/handlers/pulse.fail/").content.decode()
    assert 'href="/jobs/?handler=pulse.fail&amp;status=failed&amp;error_code=network_error">network_error</a> 2' in body


def test_the_api_gives_a_handler_with_the_calling_teams_figures(acme_api, globex_api, acme, globex, submit):
    for code in ("network_error", "network_error"):
        run_job(submit("pulse.fail", {"code": code, "retryable": False}).public_id)
    submit("pulse.fail", {"code": "timeout"})
    budget_policy_update(team=acme, changes={"handler_caps": {"pulse.fail": {"weekly": "3"}}}, by=None)

    answer = acme_api.get("/api/v1/handlers/pulse.fail/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["name"] == "pulse.fail" and body["cost"] == "0" and body["cost_text"] == "0"
    assert body["backoff"] == {"base": 1.0, "cap": 600.0}
    team = body["team"]
    assert (team["queued"], team["running"], team["held"]) == (1, 0, 0)
    assert team["last_24h"] == {"completed": 0, "failed": 2, "cancelled": 0, "success_rate": 0.0,
                                "failures": {"network_error": 2}}
    assert set(team["run_ms"]) == {"p50", "p95"}
    assert team["cap"] == {"daily": None, "weekly": "3", "monthly": None} and team["paused"] is None

    theirs = globex_api.get("/api/v1/handlers/pulse.fail/").json()["team"]
    assert theirs["queued"] == 0 and theirs["last_24h"]["failed"] == 0 and theirs["cap"] is None

    missing = acme_api.get("/api/v1/handlers/no.such/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_what_a_handler_cost_the_team_today_and_in_30_days(alice_client, charlie_client, acme_api, submit):
    for _ in range(2):
        run_job(submit("demo.report", {"delay": 0}).public_id)  # 7 tasks at 0.01 each, reported
    mine = _summaries(alice_client)["demo.report"]
    assert (mine.spent_today_text, mine.spent_30_days_text) == ("0.14", "0.14")
    assert _summaries(charlie_client)["demo.report"].spent_30_days == 0
    assert "0.14 / 0.14" in alice_client.get("/handlers/demo.report/").content.decode()
    assert acme_api.get("/api/v1/handlers/demo.report/").json()["team"]["spent"] == {"today": "0.14",
                                                                                    "last_30_days": "0.14"}


def test_a_handlers_page_charts_its_spend_per_day_under_the_teams_daily_cap_on_it(alice_client, charlie_client,
                                                                                 acme, submit):
    from django.utils import timezone

    run_job(submit("demo.report", {"delay": 0}).public_id)  # 0.07 charged today
    run_job(submit("pulse.sleep", {"seconds": 0}).public_id)  # another handler: not in this chart
    page = alice_client.get("/handlers/demo.report/").content.decode()
    chart = page[page.index('id="handler-spend"'):page.index('id="handler-payload"')]
    assert f"<title>{timezone.now().strftime('%b %d')}: 0.07 demo.report</title>" in chart
    assert "pulse.sleep" not in chart and "chart-line" not in chart  # no cap, no line

    budget_policy_update(team=acme, changes={"handler_caps": {"demo.report": {"daily": "0.5"}}}, by=None)
    chart = alice_client.get("/handlers/demo.report/").content.decode().split('id="handler-spend"')[1]
    assert "daily cap 0.5" in chart.split('id="handler-payload"')[0]

    theirs = charlie_client.get("/handlers/demo.report/").content.decode()
    theirs = theirs[theirs.index('id="handler-spend"'):theirs.index('id="handler-payload"')]
    assert "Nothing of this handler was charged in the last 30 days." in theirs and "<rect" not in theirs


def test_backticks_in_a_description_read_as_code_and_nothing_else_is_markup(alice_client):
    from pulse_site.templatetags.pulse_tags import code_spans

    assert code_spans("Runs `steps` steps of `seconds` each") == "Runs <code>steps</code> steps of <code>seconds</code> each"
    assert code_spans("<b>`<i>`</b> and a lone ` tick") == "&lt;b&gt;<code>&lt;i&gt;</code>&lt;/b&gt; and a lone ` tick"
    body = alice_client.get("/handlers/pulse.sleep/").content.decode()
    assert "Runs <code>steps</code> steps of <code>seconds</code> each" in body


def test_a_handlers_page_documents_the_fields_inside_its_fields(alice_client, temp_handler):
    """A nested object read "options object": its fields' rules and defaults were only in the raw schema."""
    schema = {"type": "object", "required": ["options"], "properties": {
        "options": {"type": "object", "required": ["format"], "properties": {
            "format": {"enum": ["pdf", "png"]}, "dpi": {"type": "integer", "default": 150, "minimum": 72}}},
        "rows": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}}

    @temp_handler("test.nested", schema=schema)
    def nested(ctx):
        return None

    fields = {f.key: f for f in alice_client.get("/handlers/test.nested/").context["fields"]}
    assert list(fields) == ["options", "options.format", "options.dpi", "rows", "rows[].name"]
    assert (fields["options.format"].required, fields["options.format"].rules) == (True, 'one of "pdf", "png"')
    assert (fields["options.dpi"].required, fields["options.dpi"].default, fields["options.dpi"].rules) == (
        False, "150", "at least 72")
