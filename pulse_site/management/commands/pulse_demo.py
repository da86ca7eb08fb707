from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from pulse_site.demo import demo_load
from pulse_site.management import refusals_as_command_errors


class Command(BaseCommand):
    help = "Load the demo teams and users; every run prints new passwords for them."

    def handle(self, *args: Any, **options: Any) -> None:
        with refusals_as_command_errors():
            users = demo_load()
        rows = [("username", "password", "teams")]
        rows += [(u.username, u.password, "staff (Django admin)" if u.staff else ", ".join(u.teams)) for u in users]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        self.stdout.write("Demo users (passwords are new on every run):")
        for username, password, teams in rows:
            self.stdout.write(f"  {username:<{widths[0]}}  {password:<{widths[1]}}  {teams}")
