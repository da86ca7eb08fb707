from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from pulse_site.management import refusals_as_command_errors
from pulse_site.teams import selectors, services
from pulse_site.teams.models import ApiToken


def _positive_days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number of days") from None
    if days < 1:
        raise argparse.ArgumentTypeError("must be at least 1 day")
    return days


class Command(BaseCommand):
    help = "Create an API token for a team and print its secret (shown this once, never again)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team_slug")
        parser.add_argument("name", help="what the token is for, e.g. 'CI'")
        parser.add_argument("--access", required=True, choices=ApiToken.Access.values)
        parser.add_argument("--expires-in-days", type=_positive_days, metavar="N", help="default: never expires")

    def handle(
        self, *args: Any, team_slug: str, name: str, access: str, expires_in_days: int | None, **options: Any
    ) -> None:
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        with refusals_as_command_errors():
            team = selectors.team_get_by_slug(team_slug)
            token, secret = services.token_create(team=team, name=name, access=access, expires_at=expires_at, by=None)
        expiry = f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never expires"
        self.stdout.write(f"Created {token.get_access_display().lower()} token '{token.name}' for {team.name} ({expiry}).")
        self.stdout.write("Secret (shown this once; use it as 'Authorization: Bearer <secret>'):")
        self.stdout.write(secret)
