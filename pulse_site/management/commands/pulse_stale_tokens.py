from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from pulse_site.management import refusals_as_command_errors
from pulse_site.teams import selectors, services
from pulse_site.teams.models import ApiToken


class Command(BaseCommand):
    help = ("List, per team, the unrevoked tokens whose maker may no longer make tokens there (no longer in the "
            "team, below admin, deactivated, deleted); with --revoke, revoke them as removing the maker does.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", metavar="SLUG", help="only this team's tokens (default: every team's)")
        parser.add_argument("--revoke", action="store_true",
                            help="revoke them (each event says why, their sockets close); default: list only")

    def handle(self, *args: Any, team: str | None, revoke: bool, **options: Any) -> None:
        with refusals_as_command_errors():
            chosen = selectors.team_get_by_slug(team) if team is not None else None
        if revoke:
            found = services.tokens_revoke_outliving_makers(team=chosen, who="operator")
        else:
            found = selectors.tokens_outliving_makers(team=chosen)
        shown_team = None
        for token, why in found:
            if token.team_id != shown_team:
                shown_team = token.team_id
                self.stdout.write(f"{token.team.name} ({token.team.slug}):")
            self.stdout.write(f"  {'revoked ' if revoke else ''}{_describe(token)}: {why}")
        where = f" in {chosen.name}" if chosen is not None else ""
        if not found:
            self.stdout.write(f"No token{where} outlives its maker's right to make it.")
        elif revoke:
            self.stdout.write(f"Revoked {len(found)} token{'s' if len(found) != 1 else ''}{where}.")
        else:
            self.stdout.write(f"{len(found)} token{'s' if len(found) != 1 else ''}{where}; "
                              "run again with --revoke to revoke them.")


def _describe(token: ApiToken) -> str:
    return f"{token.public_id} '{token.name}' ({token.prefix}…, {token.access}, made by {token.created_by_name})"
