from __future__ import annotations

import os
import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pulse_site.management import refusals_as_command_errors
from pulse_site.teams import selectors, services
from pulse_site.teams.models import Membership


class Command(BaseCommand):
    help = "Add a user to a team with a role, optionally creating the user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team_slug")
        parser.add_argument("username")
        parser.add_argument("--role", required=True, help="one of " + ", ".join(Membership.Role.values))
        parser.add_argument("--create-user", action="store_true", help="create the user first")
        parser.add_argument(
            "--password-from-env",
            metavar="VAR",
            help="with --create-user: read the password from this environment variable "
            "(default: generate one and print it)",
        )

    def handle(
        self,
        *args: Any,
        team_slug: str,
        username: str,
        role: str,
        create_user: bool,
        password_from_env: str | None,
        **options: Any,
    ) -> None:
        if password_from_env and not create_user:
            raise CommandError("--password-from-env only makes sense with --create-user.")
        password = self._password(password_from_env) if create_user else ""
        with refusals_as_command_errors():
            team = selectors.team_get_by_slug(team_slug)
            if create_user:
                membership = services.membership_add_new_user(
                    team=team, username=username, password=password, role=role, by=None
                )
            else:
                membership = services.membership_add_by_username(team=team, username=username, role=role, by=None)
        self.stdout.write(f"Added {membership.user.get_username()} to {team.name} as {membership.role}.")
        if create_user and not password_from_env:
            self.stdout.write(f"Password for {membership.user.get_username()}: {password}")

    def _password(self, variable: str | None) -> str:
        if variable is None:
            return secrets.token_urlsafe(12)
        value = os.environ.get(variable, "")
        if not value:
            raise CommandError(f"The environment variable {variable} is not set or empty.")
        return value
