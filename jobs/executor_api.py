"""GET /api/v1/executor/: the team's executor status and stats (jobs.executor)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.api import QueuePauseOut
from jobs.executor import executor_status
from pulse_site.api import TeamAPIView, error_responses


class TotalsOut(serializers.Serializer):
    processed = serializers.IntegerField(help_text="Jobs finished: succeeded + failed + cancelled.")
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Failed for good (a retried attempt is not counted until the job ends).")
    cancelled = serializers.IntegerField()
    avg_run_ms = serializers.IntegerField(
        allow_null=True, help_text="Mean run time of the finished jobs' last attempts; null before the first.")
    success_rate = serializers.FloatField(
        allow_null=True, help_text="succeeded / (succeeded + failed), 0 to 1; null while neither happened.")


class ExecutorWorkersOut(serializers.Serializer):
    total = serializers.IntegerField(help_text="Live worker processes (shared by every team).")
    active = serializers.IntegerField(help_text="Workers running this team's jobs now.")
    counted_from = serializers.ChoiceField(
        choices=["beats", "configured"],
        help_text="`beats`: counted from the workers' heartbeats; `configured`: no worker has reported yet, "
                  "`total` is PULSE_WORKERS.")
    up_since = serializers.DateTimeField(allow_null=True, help_text="Start of the longest-running live cluster.")
    uptime_seconds = serializers.IntegerField(allow_null=True)
    memory_rss_bytes = serializers.IntegerField(help_text="Resident memory of the live workers, together.")


class ExecutorMemoryOut(serializers.Serializer):
    host_used_bytes = serializers.IntegerField(help_text="Memory used on the machine that answered.")
    host_total_bytes = serializers.IntegerField()
    host_percent = serializers.FloatField()


class ExecutorOut(serializers.Serializer):
    at = serializers.DateTimeField(help_text="When these figures were read.")
    state = serializers.ChoiceField(
        choices=["running", "paused"],
        help_text="`paused` while the team's queue or every team's is paused: running jobs finish, nothing new starts.")
    pauses = QueuePauseOut(many=True, help_text="Every pause in force that holds this team's jobs.")
    paused_handlers = serializers.ListField(child=serializers.CharField(),
                                            help_text="Handlers paused everywhere by an operator.")
    active = serializers.IntegerField(help_text="Jobs running now.")
    queued = serializers.IntegerField()
    held = serializers.IntegerField(help_text="Jobs held (status paused): budget, rate, concurrency, pause…")
    backlog = serializers.IntegerField(help_text="queued + held: the jobs waiting.")
    all_time = TotalsOut(help_text="Since the first job (from the hourly rollups; deleting jobs keeps them).")
    last_24h = TotalsOut(help_text="The last 24 hours (whole hours).")
    jobs_last_minute = serializers.IntegerField(help_text="Jobs finished in the last 60 s.")
    jobs_per_second_minute = serializers.FloatField(help_text="jobs_last_minute / 60.")
    jobs_per_second_hour = serializers.FloatField(
        help_text="Jobs finished per second over the last hour, from the hourly rollups (the previous hour pro rata).")
    last_finished_at = serializers.DateTimeField(allow_null=True,
                                                 help_text="When the last job finished (completed, failed or cancelled).")
    workers = ExecutorWorkersOut()
    memory = ExecutorMemoryOut()


class ExecutorView(TeamAPIView):
    @extend_schema(operation_id="executor_retrieve", summary="The team's executor: state, jobs, throughput, workers",
                   responses={200: ExecutorOut, **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response(executor_status(team=self.team).as_dict())
