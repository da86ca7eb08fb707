from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.bulk import BULK_SERVICES, BulkOutcome, jobs_bulk_matching
from jobs.error_codes import ErrorCode
from jobs.models import Job
from jobs.selectors import JobFilter
from pulse_site.ids import looks_like_public_id
from pulse_site.management import refusals_as_command_errors
from pulse_site.teams import selectors


class Command(BaseCommand):
    help = ("Cancel, retry or delete (finished) any number of one team's jobs matching the filters, in batches of "
            "the dashboard's bulk action, each job through its own service: what the admin refuses in one request.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team_slug")
        parser.add_argument("action", choices=sorted(BULK_SERVICES))
        parser.add_argument("--status", choices=Job.Status.values)
        parser.add_argument("--handler", help="a handler's whole name")
        parser.add_argument("--source", choices=Job.Source.values)
        parser.add_argument("--error-code", choices=ErrorCode.values)
        parser.add_argument("--schedule", metavar="SP_ID", help="the jobs a schedule ran")
        parser.add_argument("--all", action="store_true", dest="every_job",
                            help="every job of the team: needed when no filter is given")

    def handle(self, *args: Any, team_slug: str, action: str, status: str | None, handler: str | None,
               source: str | None, error_code: str | None, schedule: str | None, every_job: bool,
               **options: Any) -> None:
        if schedule and not looks_like_public_id(schedule, "SP"):
            raise CommandError(f"--schedule: '{schedule}' is no schedule id (SP_…).")
        filters = JobFilter(status=status or "", handler=handler or "", source=source or "",
                            error_code=error_code or "", origin=schedule or "")
        if filters == JobFilter() and not every_job:
            raise CommandError("No filter given: add --all to act on every job of the team.")
        with refusals_as_command_errors():
            team = selectors.team_get_by_slug(team_slug)
            total = BulkOutcome()
            cursor: str | None = None
            while True:
                batch = jobs_bulk_matching(team=team, action=action, filters=filters, cursor=cursor, by="operator")
                total.done += batch.done
                total.refused += batch.refused
                self.stdout.write(batch.summary(action))
                cursor = batch.cursor
                if cursor is None:
                    break
        self.stdout.write(f"{team.name}: {total.summary(action)}")
