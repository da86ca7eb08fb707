"""Schedules over the API: CRUD, pause, resume, run now, preview, executions. Every write is a service call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from budgets.api import MONEY
from pulse_site.api import (
    LOCATION, PageQuery, TeamAPIView, as_sent, created, error_responses, no_input, query_choice, valid_input,
)
from schedules.events import execution_summary, schedule_summary
from schedules.models import Schedule
from schedules.selectors import (
    EXECUTION_STATUSES,
    executions_list,
    preview,
    schedule_description,
    schedule_fire_note,
    schedule_get_for_team,
    schedule_next_runs,
    schedule_projection,
    schedules_list,
)
from schedules.services import (
    schedule_create,
    schedule_delete,
    schedule_pause,
    schedule_resume,
    schedule_trigger,
    schedule_update,
)

# --- Shapes ----------------------------------------------------------------------------------


class ScheduleOut(serializers.Serializer):
    id = serializers.CharField(help_text="SP_…")
    name = serializers.CharField()
    description = serializers.CharField()
    handler = serializers.CharField()
    payload = serializers.JSONField()
    cron = serializers.CharField()
    cron_description = serializers.CharField(help_text="The expression in words, e.g. 'At 09:00, Monday through Friday'.")
    time_zone = serializers.CharField()
    enabled = serializers.BooleanField()
    overlap_policy = serializers.ChoiceField(choices=Schedule.Overlap.choices,
                                             help_text="queue: submit anyway; the job runs when capacity allows.")
    misfire_policy = serializers.ChoiceField(choices=Schedule.Misfire.choices)
    estimate_override = serializers.CharField(allow_null=True, help_text="Money as a string; null: the handler's estimate.")
    next_run_at = serializers.DateTimeField(allow_null=True)
    next_runs = serializers.ListField(child=serializers.DateTimeField(), help_text=(
        "The next five fire times (UTC); for a paused schedule (enabled false, next_run_at null), the ones "
        "resuming now would bring."))
    last_run_at = serializers.DateTimeField(allow_null=True)
    broken_reason = serializers.CharField(help_text="Why the schedule stopped firing; empty when healthy.")
    paused_reason = serializers.CharField(help_text=(
        "Why it was paused when not by a person's choice ('team retired'); empty otherwise, and once resumed."))
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ScheduleOneOut(ScheduleOut):
    next_runs_notes = serializers.ListField(child=serializers.CharField(), help_text=(
        "What a clock change does to each of next_runs, in words, \"\" for most (as the preview's). "
        "In the answers about one schedule, not in the list."))
    projection = serializers.JSONField(allow_null=True, help_text=(
        "The next 30 days: runs (approximate: scaled from the first 300), per_run (the estimate), total, per_day, "
        "over: the team's limits the schedule alone would pass (its busiest day against the daily limit, an "
        "average week against the weekly), and refused_by: the limits each run's estimate alone is above (every "
        "run is then refused). Null for an expression that no longer parses. "
        "In the answers about one schedule, not in the list."))


class ScheduleIn(serializers.Serializer):
    name = serializers.CharField(max_length=100, allow_blank=True)
    description = serializers.CharField(allow_blank=True, required=False, max_length=2000)
    handler = serializers.CharField(max_length=100)
    payload = serializers.JSONField(required=False)
    cron = serializers.CharField(max_length=200, allow_blank=True)
    time_zone = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True,
                                      help_text="IANA name; null or empty: the team's time zone.")
    enabled = serializers.BooleanField(required=False)
    overlap_policy = as_sent(serializers.ChoiceField(choices=Schedule.Overlap.choices), serializers.CharField,
                             required=False)
    misfire_policy = as_sent(serializers.ChoiceField(choices=Schedule.Misfire.choices), serializers.CharField,
                             required=False)
    # Passed on as sent, once it is a string: the money parser reads it.
    estimate_override = as_sent({**MONEY, "nullable": True}, required=False, allow_null=True,
                                help_text="Money as a string, e.g. \"0.25\"; null: the handler's estimate.")


class ExecutionOut(serializers.Serializer):
    id = serializers.CharField(help_text="EX_…")
    schedule = serializers.CharField()
    fire_time = serializers.DateTimeField()
    trigger = serializers.ChoiceField(choices=["cron", "manual"])
    status = serializers.ChoiceField(choices=EXECUTION_STATUSES, help_text="The job's status, or skipped/error.")
    job = serializers.CharField(allow_null=True)
    reason = serializers.CharField(help_text=(
        "Why it was skipped or failed; for the first run after downtime, the slots no ticker ran at and what the "
        "misfire policy did about them. Empty otherwise."))
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)


class ExecutionPageOut(serializers.Serializer):
    results = ExecutionOut(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as ?cursor= for the next page.")


class PreviewIn(serializers.Serializer):
    cron = serializers.CharField(allow_blank=True, max_length=500)
    time_zone = serializers.CharField(allow_blank=True, required=False, max_length=64,
                                      help_text="IANA name; empty or left out: the team's time zone.")


class PreviewOut(serializers.Serializer):
    description = serializers.CharField()
    next_runs = serializers.ListField(child=serializers.DateTimeField(), help_text="UTC.")
    next_runs_local = serializers.ListField(child=serializers.CharField(), help_text="In the zone, ISO 8601 with offset.")
    next_runs_notes = serializers.ListField(child=serializers.CharField(), help_text=(
        "What a clock change does to each run, in words, \"\" for most: one moved to the jump from a time the "
        "spring change skips, one of a time the autumn change repeats (which pass it is)."))


def schedule_detail(schedule: Schedule, *, runs: list[datetime] | None = None) -> dict[str, Any]:
    """A schedule as the API gives it; `runs`: its next runs, when the caller has them already."""
    return {
        **schedule_summary(schedule),
        "description": schedule.description,
        "payload": schedule.payload,
        "cron_description": schedule_description(schedule),
        "next_runs": [run.isoformat() for run in (schedule_next_runs(schedule) if runs is None else runs)],
        "created_by": schedule.created_by,
        "created_at": schedule.created_at.isoformat(),
        "updated_at": schedule.updated_at.isoformat(),
    }


def schedule_one(schedule: Schedule) -> dict[str, Any]:
    """One schedule's answer: its detail and its projected runs and cost (too slow for a list of
    thousands: up to 300 cron steps each)."""
    projection = schedule_projection(schedule)
    runs = schedule_next_runs(schedule)
    return {**schedule_detail(schedule, runs=runs), "next_runs_notes": [schedule_fire_note(schedule, run) for run in runs],
            "projection": projection.as_dict() if projection else None}


class ExecutionListQuery(PageQuery):
    status = query_choice(EXECUTION_STATUSES)


# --- Views -----------------------------------------------------------------------------------


class ScheduleListQuery(PageQuery):
    name = serializers.CharField(required=False, allow_blank=True, max_length=100,
                                 help_text="Only schedules whose name holds this (any case).")
    handler = serializers.CharField(required=False, allow_blank=True, max_length=100,
                                    help_text="Only schedules of this handler.")


class SchedulePageOut(serializers.Serializer):
    results = ScheduleOut(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as ?cursor= for the next page; null at the end.")


class ScheduleListView(TeamAPIView):
    queries = {"GET": ScheduleListQuery}

    @extend_schema(operation_id="schedules_list", responses={200: SchedulePageOut, **error_responses(400, 401)})
    def get(self, request: Request) -> Response:
        rows, cursor = schedules_list(team=self.team, after=self.query.get("cursor") or None,
                                      limit=self.query["limit"], name=self.query.get("name", "").strip(),
                                      handler=self.query.get("handler", ""))
        return Response({"results": [schedule_detail(row.schedule) for row in rows], "next_cursor": cursor})

    @extend_schema(operation_id="schedules_create", request=ScheduleIn, parameters=[LOCATION],
                   responses={201: ScheduleOneOut, **error_responses(400, 401, 403, 413)})
    def post(self, request: Request) -> Response:
        data = valid_input(ScheduleIn, request)
        schedule = schedule_create(team=self.team, created_by=self.who, **data)
        return created(schedule_one(schedule), "api-schedule", schedule_id=schedule.public_id)


class ScheduleDetailView(TeamAPIView):
    @extend_schema(operation_id="schedules_retrieve", responses={200: ScheduleOneOut, **error_responses(401, 404)})
    def get(self, request: Request, schedule_id: str) -> Response:
        return Response(schedule_one(schedule_get_for_team(team=self.team, schedule_id=schedule_id)))

    @extend_schema(operation_id="schedules_update", request=ScheduleIn(partial=True),
                   responses={200: ScheduleOneOut, **error_responses(400, 401, 403, 404, 413)})
    def patch(self, request: Request, schedule_id: str) -> Response:
        schedule = schedule_get_for_team(team=self.team, schedule_id=schedule_id)
        changes = valid_input(ScheduleIn, request, partial=True)
        if "time_zone" in changes and not changes["time_zone"]:  # null or "": the team's, as on create
            changes["time_zone"] = self.team.time_zone
        return Response(schedule_one(schedule_update(schedule=schedule, changes=changes, by=self.who)))

    @extend_schema(operation_id="schedules_destroy", responses={204: None, **error_responses(401, 403, 404)})
    def delete(self, request: Request, schedule_id: str) -> Response:
        schedule = schedule_get_for_team(team=self.team, schedule_id=schedule_id)
        no_input(request)
        schedule_delete(schedule=schedule, by=self.who)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _action_view(service, operation: str, summary: str):
    class ActionView(TeamAPIView):
        @extend_schema(operation_id=operation, summary=summary, request=None,
                       responses={200: ScheduleOneOut, **error_responses(401, 403, 404)})
        def post(self, request: Request, schedule_id: str) -> Response:
            schedule = schedule_get_for_team(team=self.team, schedule_id=schedule_id)
            no_input(request)
            return Response(schedule_one(service(schedule=schedule, by=self.who)))

    ActionView.__name__ = f"Schedule{operation.split('_')[-1].title()}View"
    return ActionView


SchedulePauseView = _action_view(schedule_pause, "schedules_pause", "Stop firing (idempotent)")
ScheduleResumeView = _action_view(schedule_resume, "schedules_resume",
                                  "Fire again from the next slot after now; missed runs are not caught up")


class ScheduleTriggerView(TeamAPIView):
    @extend_schema(operation_id="schedules_trigger", summary="Run now: a manual execution and its job", request=None,
                   responses={201: ExecutionOut, **error_responses(400, 401, 403, 404, 413)})
    def post(self, request: Request, schedule_id: str) -> Response:
        schedule = schedule_get_for_team(team=self.team, schedule_id=schedule_id)
        no_input(request)
        execution = schedule_trigger(schedule=schedule, by=self.who)
        return Response(execution_summary(execution), status=status.HTTP_201_CREATED)


class SchedulePreviewView(TeamAPIView):
    @extend_schema(operation_id="schedules_preview", summary="Describe an expression and list its next five runs",
                   request=PreviewIn, responses={200: PreviewOut, **error_responses(400, 401, 403)})
    def post(self, request: Request) -> Response:
        data = valid_input(PreviewIn, request)
        result = preview(cron=data["cron"], time_zone=data.get("time_zone") or self.team.time_zone)
        runs = result["next_runs"]
        return Response({
            "description": result["description"],
            "next_runs": [run.isoformat() for run in runs],  # type: ignore[attr-defined]
            "next_runs_local": [run.astimezone(result["zone"]).isoformat() for run in runs],  # type: ignore[attr-defined]
            "next_runs_notes": result["notes"],
        })


class ExecutionListView(TeamAPIView):
    queries = {"GET": ExecutionListQuery}

    @extend_schema(
        operation_id="schedules_executions",
        responses={200: ExecutionPageOut, **error_responses(400, 401, 404)},
    )
    def get(self, request: Request, schedule_id: str) -> Response:
        schedule = schedule_get_for_team(team=self.team, schedule_id=schedule_id)
        page, cursor = executions_list(schedule=schedule, status=self.query.get("status", ""),
                                       before=self.query.get("cursor") or None, limit=self.query["limit"])
        return Response({"results": [execution_summary(e) for e in page], "next_cursor": cursor})
