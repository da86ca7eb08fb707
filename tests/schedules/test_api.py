"""The schedules API: CRUD, actions, preview, executions with filter and cursor; charlie gets 404."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs.models import Job
from schedules.models import Execution, Schedule
from schedules.services import schedules_tick
from tests.conftest import pages_from

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 10, 0, 0, tzinfo=UTC)


def create(client, **body):
    body = {"name": "Hourly", "handler": "pulse.sleep", "payload": {"steps": 1, "seconds": 0}, "cron": "@hourly",
            "time_zone": "Europe/Berlin", **body}
    return client.post("/api/v1/schedules/", body, format="json")


def test_a_schedule_is_created_read_listed_and_updated(acme_api, time_machine):
    time_machine.move_to(T0, tick=False)
    response = create(acme_api, estimate_override="0.5", overlap_policy="queue")
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("SP_")
    assert body["cron_description"] == "Every hour"
    assert body["next_run_at"] == "2026-06-01T11:00:00+00:00"
    assert body["next_runs"][:2] == ["2026-06-01T11:00:00+00:00", "2026-06-01T12:00:00+00:00"]
    assert (body["estimate_override"], body["overlap_policy"], body["misfire_policy"]) == ("0.5", "queue", "once")
    assert body["created_by"] == "token write token"
    assert acme_api.get(f"/api/v1/schedules/{body['id']}/").json() == body
    assert [s["id"] for s in acme_api.get("/api/v1/schedules/").json()["results"]] == [body["id"]]
    changed = acme_api.patch(f"/api/v1/schedules/{body['id']}/", {"cron": "0 9 * * 1-5", "time_zone": None},
                             format="json").json()
    assert (changed["cron"], changed["time_zone"], changed["cron_description"]) == (
        "0 9 * * 1-5", "UTC", "At 09:00, Monday through Friday")
    assert changed["next_run_at"] == "2026-06-02T09:00:00+00:00"


def test_refusals_name_every_field_in_the_one_error_shape(acme_api):
    response = create(acme_api, cron="0 0 30 2 *", time_zone="Atlantis", payload={"steps": "many"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"] == {
        "cron": ["This expression never fires (not once in the next 5 years)."],
        "time_zone": ["'Atlantis' is not an IANA time zone name (e.g. Europe/Berlin)."],
        "payload.steps": ["'many' is not of type 'integer'"],
    }
    assert Schedule.objects.count() == 0


@pytest.mark.parametrize("value", ["+1", " 1", "1 ", "-0", "0.2500000"])
def test_an_estimate_override_not_written_in_plain_digits_is_refused_not_read_as_a_number(acme_api, value):
    """The schema's pattern and the README: plain digits, at most six decimals; "+1" was taken as 1."""
    response = create(acme_api, estimate_override=value)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["estimate_override"]
    assert Schedule.objects.count() == 0


@pytest.mark.parametrize("value, reason", [
    (0.5, 'Expected a decimal string (e.g. "10.50") or null, not a number with a decimal point or an exponent.'),
    (0.30000000000000004,
     'Expected a decimal string (e.g. "10.50") or null, not a number with a decimal point or an exponent.'),
    (25, 'Expected a decimal string (e.g. "10.50") or null, not a number.'),
    ({"amount": "1"}, 'Expected a decimal string (e.g. "10.50") or null, not an object.'),
])
def test_an_estimate_override_that_is_no_decimal_string_is_refused_by_name(acme_api, value, reason):
    """As the budget's limits are: a float is not what it prints (0.1 is not 0.1)."""
    response = create(acme_api, estimate_override=value)
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"estimate_override": [reason]}
    assert Schedule.objects.count() == 0
    made = create(acme_api, estimate_override="0.25").json()
    patched = acme_api.patch(f"/api/v1/schedules/{made['id']}/", {"estimate_override": value}, format="json")
    assert patched.status_code == 400 and "estimate_override" in patched.json()["error"]["fields"]
    assert acme_api.get(f"/api/v1/schedules/{made['id']}/").json()["estimate_override"] == "0.25"


def test_preview_describes_and_lists_the_next_runs_in_the_zone(acme_api, time_machine):
    time_machine.move_to(T0, tick=False)
    body = acme_api.post("/api/v1/schedules/preview/", {"cron": "30 8 * * 1", "time_zone": "America/New_York"},
                         format="json").json()
    assert body["description"] == "At 08:30, only on Monday"
    assert body["next_runs_local"][:2] == ["2026-06-01T08:30:00-04:00", "2026-06-08T08:30:00-04:00"]
    assert body["next_runs"][0] == "2026-06-01T12:30:00+00:00"
    refused = acme_api.post("/api/v1/schedules/preview/", {"cron": "61 * * * *", "time_zone": "Nowhere"}, format="json")
    assert refused.status_code == 400
    assert set(refused.json()["error"]["fields"]) == {"cron", "time_zone"}


def test_preview_without_a_zone_uses_the_teams_as_a_create_does(acme, acme_api, time_machine):
    """The zone was required here (400 "This field is required.") though a create takes the team's."""
    time_machine.move_to(T0, tick=False)
    acme.time_zone = "Asia/Tokyo"
    acme.save(update_fields=["time_zone"])
    response = acme_api.post("/api/v1/schedules/preview/", {"cron": "0 9 * * *"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["next_runs_local"][0] == "2026-06-02T09:00:00+09:00"
    assert response.json()["next_runs"][0] == "2026-06-02T00:00:00+00:00"


def test_an_empty_zone_means_the_teams_on_create_and_update_as_on_the_preview(acme, acme_api):
    """"" was refused ("This field may not be blank.") on create and update while the preview took it."""
    acme.time_zone = "Asia/Tokyo"
    acme.save(update_fields=["time_zone"])
    created = create(acme_api, time_zone="")
    assert created.status_code == 201, created.json()
    assert created.json()["time_zone"] == "Asia/Tokyo"

    schedule_id = created.json()["id"]
    acme_api.patch(f"/api/v1/schedules/{schedule_id}/", {"time_zone": "Europe/Paris"}, format="json")
    changed = acme_api.patch(f"/api/v1/schedules/{schedule_id}/", {"time_zone": ""}, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["time_zone"] == "Asia/Tokyo"


def test_preview_is_refused_to_a_read_token_as_its_schema_says(acme_api_read):
    response = acme_api_read.post("/api/v1/schedules/preview/", {"cron": "0 9 * * *"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {"code": "permission_denied", "message": "This token is read-only.",
                                        "fields": {}}
    schema = acme_api_read.get("/api/schema/", {"format": "json"}).json()
    assert "403" in schema["paths"]["/api/v1/schedules/preview/"]["post"]["responses"]
    assert "time_zone" not in schema["components"]["schemas"]["PreviewInRequest"].get("required", [])


def test_pause_resume_and_trigger(acme_api):
    schedule_id = create(acme_api).json()["id"]
    paused = acme_api.post(f"/api/v1/schedules/{schedule_id}/pause/").json()
    assert (paused["enabled"], paused["next_run_at"]) == (False, None)
    resumed = acme_api.post(f"/api/v1/schedules/{schedule_id}/resume/").json()
    assert resumed["enabled"] is True and resumed["next_run_at"] is not None
    response = acme_api.post(f"/api/v1/schedules/{schedule_id}/trigger/")
    assert response.status_code == 201
    execution = response.json()
    assert (execution["trigger"], execution["status"], execution["schedule"]) == ("manual", "queued", schedule_id)
    assert Job.objects.get().public_id == execution["job"]


def test_an_action_refuses_a_body_by_name_and_changes_nothing(acme_api):
    """Run now with a payload used to answer 201 and run the schedule's own payload."""
    schedule_id = create(acme_api).json()["id"]
    before = list(Schedule.objects.values())
    url = f"/api/v1/schedules/{schedule_id}/"
    for action, body in (("trigger/", {"payload": {"steps": 9}}), ("pause/", {"until": "tomorrow"}),
                         ("resume/", {"catch_up": True})):
        response = acme_api.post(url + action, body, format="json")
        assert response.status_code == 400
        field = next(iter(body))
        assert response.json()["error"] == {"code": "validation_error", "message": f"{field}: Unknown field.",
                                            "fields": {field: ["Unknown field."]}}
    assert list(Schedule.objects.values()) == before
    assert not Execution.objects.exists() and not Job.objects.exists()
    assert acme_api.post(url + "trigger/", {}, format="json").status_code == 201  # an empty object is no option


def test_executions_are_paged_newest_first_and_filtered_by_status(acme_api, time_machine):
    time_machine.move_to(T0, tick=False)
    schedule_id = create(acme_api, cron="* * * * *", overlap_policy="skip").json()["id"]
    for minute in (1, 2, 3):
        time_machine.move_to(datetime(2026, 6, 1, 10, minute, tzinfo=UTC), tick=False)
        schedules_tick()
    url = f"/api/v1/schedules/{schedule_id}/executions/"
    first = acme_api.get(url, {"limit": 2}).json()
    assert [e["fire_time"] for e in first["results"]] == ["2026-06-01T10:03:00+00:00", "2026-06-01T10:02:00+00:00"]
    second = acme_api.get(url, {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert ([e["fire_time"] for e in second["results"]], second["next_cursor"]) == (["2026-06-01T10:01:00+00:00"], None)
    assert [e["status"] for e in acme_api.get(url, {"status": "skipped"}).json()["results"]] == ["skipped", "skipped"]
    assert len(acme_api.get(url, {"status": "queued"}).json()["results"]) == 1
    assert acme_api.get(url, {"status": "nope"}).json()["error"]["fields"] == {
        "status": ["Choose one of queued, paused, running, completed, failed, cancelled, skipped, error."]}


def test_a_read_token_reads_but_cannot_write(acme, acme_api, acme_api_read):
    schedule_id = create(acme_api).json()["id"]
    assert acme_api_read.get(f"/api/v1/schedules/{schedule_id}/").status_code == 200
    assert create(acme_api_read).status_code == 403
    assert acme_api_read.post(f"/api/v1/schedules/{schedule_id}/trigger/").status_code == 403


def test_charlie_gets_404_for_every_route_with_acmes_ids_and_nothing_changes(acme_api, globex_api, time_machine):
    time_machine.move_to(T0, tick=False)
    schedule_id = create(acme_api).json()["id"]
    create(acme_api, name="Second")
    acmes_cursor = acme_api.get("/api/v1/schedules/?limit=1").json()["next_cursor"]
    before = list(Schedule.objects.values())
    base = f"/api/v1/schedules/{schedule_id}/"
    assert globex_api.get(base).status_code == 404
    assert globex_api.patch(base, {"name": "Mine"}, format="json").status_code == 404
    assert globex_api.delete(base).status_code == 404
    for action in ("pause", "resume", "trigger"):
        assert globex_api.post(f"{base}{action}/").status_code == 404
    assert globex_api.get(f"{base}executions/").status_code == 404
    assert globex_api.get("/api/v1/schedules/").json() == {"results": [], "next_cursor": None}
    for cursor in (schedule_id, acmes_cursor):
        assert globex_api.get(f"/api/v1/schedules/?cursor={cursor}").json()["error"]["fields"] == {
            "cursor": ["Not a cursor of this list: pass the next_cursor a page of it gave."]}
    assert list(Schedule.objects.values()) == before
    assert (Execution.objects.count(), Job.objects.count()) == (0, 0)


def test_the_openapi_schema_documents_the_schedule_routes(acme_api):
    schema = acme_api.get("/api/schema/", {"format": "json"}).json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values() if isinstance(op, dict)}
    assert {"schedules_list", "schedules_create", "schedules_retrieve", "schedules_update", "schedules_destroy",
            "schedules_pause", "schedules_resume", "schedules_trigger", "schedules_preview",
            "schedules_executions"} <= operations


def test_the_list_is_paged_by_name_and_filtered_by_a_piece_of_the_name(acme, acme_api, globex):
    from schedules.services import schedule_create

    names = ["alpha", "Beta report", "beta", "gamma report", "delta"]
    for name in names:
        schedule_create(team=acme, name=name, handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
    schedule_create(team=globex, name="Globex report", handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")

    seen, cursor = [], ""
    while True:
        page = acme_api.get(f"/api/v1/schedules/?limit=2&cursor={cursor}").json()
        assert len(page["results"]) <= 2
        seen += [s["name"] for s in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Every schedule once, in the database's order of names (its collation decides where "Beta" goes).
    assert seen == list(Schedule.objects.filter(team=acme).order_by("name", "pk").values_list("name", flat=True))
    assert sorted(seen) == sorted(names)

    reports = acme_api.get("/api/v1/schedules/?name=REPORT").json()
    assert sorted(s["name"] for s in reports["results"]) == ["Beta report", "gamma report"]
    assert reports["next_cursor"] is None
    assert acme_api.get("/api/v1/schedules/?limit=201").json()["error"]["fields"] == {"limit": ["From 1 to 200."]}
    schedule_create(team=acme, name="Sleeper", handler="pulse.sleep", payload={"seconds": 1}, cron="0 3 * * *",
                    time_zone="UTC")
    assert [s["name"] for s in acme_api.get("/api/v1/schedules/?handler=pulse.sleep").json()["results"]] == ["Sleeper"]
    assert acme_api.get("/api/v1/schedules/?handler=pulse.sleep&name=report").json()["results"] == []


def test_a_client_that_renames_or_deletes_the_schedules_it_read_pages_on_to_the_end(acme, acme_api):
    """The cursor named the page's last schedule: deleted, the next page was a 400; renamed, the
    next page carried on from its new name and skipped or repeated schedules."""
    from schedules.services import schedule_create

    for name in ("a1", "a2", "a3", "a4", "a5", "a6"):
        schedule_create(team=acme, name=name, handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
    seen, cursor = [], ""
    while True:
        page = acme_api.get(f"/api/v1/schedules/?limit=2&cursor={cursor}")
        assert page.status_code == 200, page.json()
        for schedule in page.json()["results"]:
            seen.append(schedule["name"])
            if schedule["name"] in ("a1", "a3", "a5"):
                assert acme_api.delete(f"/api/v1/schedules/{schedule['id']}/").status_code == 204
            elif schedule["name"] in ("a2", "a4", "a6"):  # moved past the rest, so listed again at the end
                renamed = acme_api.patch(f"/api/v1/schedules/{schedule['id']}/", {"name": f"z{schedule['name']}"},
                                         format="json")
                assert renamed.status_code == 200
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ["a1", "a2", "a3", "a4", "a5", "a6", "za2", "za4", "za6"]
    assert sorted(Schedule.objects.values_list("name", flat=True)) == ["za2", "za4", "za6"]



def test_a_schedule_made_with_a_name_after_the_last_one_read_is_on_the_next_page(acme, acme_api):
    """The cursor named the next page's first schedule (a4), so the next page started there and a3,
    made between the two reads, was on no page though it sorts after everything read."""
    from schedules.services import schedule_create

    for name in ("a1", "a2", "a4", "a5"):
        schedule_create(team=acme, name=name, handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
    first = acme_api.get("/api/v1/schedules/?limit=2").json()
    assert [s["name"] for s in first["results"]] == ["a1", "a2"]
    schedule_create(team=acme, name="a3", handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
    assert pages_from(acme_api, "/api/v1/schedules/?limit=2", first["next_cursor"], "name") == ["a3", "a4", "a5"]


def test_renaming_or_deleting_the_schedule_the_next_page_would_start_with_skips_nothing(acme, acme_api):
    """Another member renames a3, not yet read, to z3: the next page followed it to z3 and a4 and a5
    were on no page; deleted, the next page was a 400."""
    from schedules.services import schedule_create, schedule_delete, schedule_update

    made = {name: schedule_create(team=acme, name=name, handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
            for name in ("a1", "a2", "a3", "a4", "a5", "a6", "a7")}
    first = acme_api.get("/api/v1/schedules/?limit=2").json()
    schedule_update(schedule=made["a3"], changes={"name": "z3"}, by="bob")
    assert pages_from(acme_api, "/api/v1/schedules/?limit=2", first["next_cursor"], "name") == ["a4", "a5", "a6", "a7", "z3"]

    third = acme_api.get(f"/api/v1/schedules/?limit=2&cursor={first['next_cursor']}").json()
    schedule_delete(schedule=made["a6"], by="bob")
    assert pages_from(acme_api, "/api/v1/schedules/?limit=2", third["next_cursor"], "name") == ["a7", "z3"]


def _four_runs(acme_api, time_machine) -> str:
    """A schedule that ran at 10:01 to 10:04: the URL of its executions."""
    time_machine.move_to(T0, tick=False)
    schedule_id = create(acme_api, cron="* * * * *", overlap_policy="allow").json()["id"]
    for minute in (1, 2, 3, 4):
        time_machine.move_to(datetime(2026, 6, 1, 10, minute, tzinfo=UTC), tick=False)
        schedules_tick()
    return f"/api/v1/schedules/{schedule_id}/executions/"


def test_executions_page_on_when_the_last_one_read_is_pruned(acme, acme_api, time_machine):
    url = _four_runs(acme_api, time_machine)
    first = acme_api.get(url, {"limit": 2}).json()
    Execution.objects.filter(public_id__in=[e["id"] for e in first["results"]]).delete()  # as retention or a withdrawal
    second = acme_api.get(url, {"limit": 2, "cursor": first["next_cursor"]})
    assert second.status_code == 200, second.json()
    assert [e["fire_time"] for e in second.json()["results"]] == ["2026-06-01T10:02:00+00:00",
                                                                  "2026-06-01T10:01:00+00:00"]
    assert second.json()["next_cursor"] is None


def test_executions_page_on_when_the_one_the_next_page_would_start_with_is_withdrawn(acme, acme_api, time_machine):
    """The cursor named the next page's first run; the retention or a withdrawn staged run deleting
    it before the next page was asked for made that page a 400."""
    url = _four_runs(acme_api, time_machine)
    first = acme_api.get(url, {"limit": 2}).json()
    Execution.objects.filter(fire_time=datetime(2026, 6, 1, 10, 2, tzinfo=UTC)).delete()
    second = acme_api.get(url, {"limit": 2, "cursor": first["next_cursor"]})
    assert second.status_code == 200, second.json()
    assert [e["fire_time"] for e in second.json()["results"]] == ["2026-06-01T10:01:00+00:00"]


def test_a_change_that_changes_nothing_writes_nothing_and_a_change_names_its_fields(acme_api, acme):
    from pulse_site.live.models import Event

    made = create(acme_api).json()
    before = Event.objects.filter(kind="schedule.changed").count()
    assert acme_api.patch(f"/api/v1/schedules/{made['id']}/", {}, format="json").status_code == 200
    assert acme_api.patch(f"/api/v1/schedules/{made['id']}/", {"cron": "@hourly"}, format="json").status_code == 200
    assert Event.objects.filter(kind="schedule.changed").count() == before
    acme_api.patch(f"/api/v1/schedules/{made['id']}/", {"cron": "0 * * * *", "name": "Hourly too"}, format="json")
    changed = Event.objects.filter(kind="schedule.changed").latest("id")
    assert (changed.payload["fields"], changed.payload["by"]) == (["name", "cron"], "token write token")
    # What each was: the activity line says "cron “@hourly” → “0 * * * *”", not only "cron changed".
    assert changed.payload["before"] == {"name": made["name"], "cron": "@hourly"}
    assert (changed.payload["name"], changed.payload["cron"]) == ("Hourly too", "0 * * * *")


def test_the_run_after_downtime_says_in_the_api_which_slots_no_ticker_ran_at(acme_api, time_machine):
    time_machine.move_to(T0, tick=False)
    schedule_id = create(acme_api, cron="*/15 * * * *", time_zone="UTC").json()["id"]
    time_machine.move_to(datetime(2026, 6, 1, 11, 7, tzinfo=UTC), tick=False)  # 10:15 … 11:00 were missed
    schedules_tick()
    [run] = acme_api.get(f"/api/v1/schedules/{schedule_id}/executions/").json()["results"]
    assert (run["fire_time"], run["status"], run["reason"]) == (
        "2026-06-01T11:00:00+00:00", "queued", "No ticker ran at its slots from 2026-06-01 10:15 UTC to 11:00 UTC: "
                                               "after downtime this schedule runs once for them all: this run.")
