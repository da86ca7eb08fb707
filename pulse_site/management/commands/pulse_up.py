from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from pulse_site.processes import ChildDied, Supervisor, port_is_free, pulse_children


class Command(BaseCommand):
    help = "Migrate, load the demo, and run web, worker and ticker together until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--no-demo", action="store_true", help="do not load (or reset) the demo data")

    def handle(self, *args: Any, port: int, host: str, no_demo: bool, **options: Any) -> None:
        if not port_is_free(host, port):
            raise CommandError(f"Port {port} on {host} is in use; pass another with --port.")
        call_command("migrate", interactive=False, verbosity=1, stdout=self.stdout)
        if not no_demo:
            call_command("pulse_demo", stdout=self.stdout)
        connections.close_all()  # the children open their own; this process only supervises
        supervisor = Supervisor(pulse_children(host=host, port=port), out=self.stdout)
        supervisor.install_signal_handlers()
        supervisor.start()
        try:
            supervisor.run(host=host, port=port)
        except ChildDied as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("Pulse stopped.")
