from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from pulse_site.management import refusals_as_command_errors
from pulse_site.teams import selectors, services


class Command(BaseCommand):
    help = ("Retire a team: it takes no new jobs, schedules or tokens; its tokens are revoked, its schedules paused "
            "(reason: team retired), its queued and held jobs cancelled and its running ones told to stop; its "
            "history stays. With --reactivate, it takes new work again (tokens stay revoked, schedules paused).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the team's slug")
        parser.add_argument("--reactivate", action="store_true",
                            help="take the team out of retirement instead")

    def handle(self, *args: Any, slug: str, reactivate: bool, **options: Any) -> None:
        with refusals_as_command_errors():
            team = selectors.team_get_by_slug(slug)
        if reactivate:
            if services.team_reactivate(team=team, who="operator"):
                self.stdout.write(f"Reactivated {team.name} ({team.slug}): it takes new work again. Its tokens stay "
                                  "revoked and its schedules paused until a person resumes each.")
            else:
                self.stdout.write(f"{team.name} ({team.slug}) is not retired: nothing done.")
            return
        done = services.team_retire(team=team, who="operator")
        if done.already:
            self.stdout.write(f"{team.name} ({team.slug}) was retired already (by {team.retired_by}); swept again: "
                              f"{done.counts()}.")
        else:
            self.stdout.write(f"Retired {team.name} ({team.slug}): {done.counts()}.")
