from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from pulse_site.management import refusals_as_command_errors
from pulse_site.teams import selectors, services


class Command(BaseCommand):
    help = "Create a team, optionally with an existing user as its owner."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the team's display name")
        parser.add_argument("--slug", default="", help="URL name (default: derived from the name)")
        parser.add_argument("--time-zone", default="UTC", help="IANA time zone, e.g. Europe/Berlin (default UTC)")
        parser.add_argument("--owner", metavar="USERNAME", help="an existing user who becomes the owner")

    def handle(self, *args: Any, name: str, slug: str, time_zone: str, owner: str | None, **options: Any) -> None:
        with refusals_as_command_errors():
            owner_user = selectors.user_get_by_username(owner) if owner else None
            team = services.team_create(name=name, slug=slug, time_zone=time_zone, owner=owner_user)
        self.stdout.write(f"Created team {team.name} (slug {team.slug}, id {team.public_id}).")
        if owner_user is None:
            # Nobody but staff can manage a team without an owner: say how to give it one.
            self.stdout.write(f"It has no owner yet, so only staff can manage it: give it one with "
                              f"`manage.py pulse_add_member {team.slug} USERNAME --role owner` (add "
                              "`--create-user` for a new user).")
