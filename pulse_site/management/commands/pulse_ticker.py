from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pulse_site import ticker
from pulse_site.live.relay import relay_loop

RELAY_STEP = "relay_events"

log = logging.getLogger("pulse.ticker")


class Command(BaseCommand):
    help = "Run the ticker: a round every PULSE_TICK_MS runs each registered step that is due (each at its own interval), until SIGTERM or Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run every step once and exit (non-zero if one failed)")
        parser.add_argument("--skip", action="append", default=[], metavar="STEP", help="leave out a step (repeatable)")

    def handle(self, *args: Any, once: bool, skip: list[str], **options: Any) -> None:
        names = [item.name for item in ticker.registered_steps()]
        unknown = sorted(set(skip) - set(names))
        if unknown:
            raise CommandError(f"No ticker step is called {', '.join(unknown)}; the steps are: {', '.join(names) or 'none'}.")
        if once:
            results = ticker.run_once([name for name in names if name not in skip])
            failed = [name for name, ok in results.items() if not ok]
            if failed:
                raise CommandError(f"Ticker steps failed: {', '.join(failed)} (see the log above).")
            self.stdout.write(f"Ran {len(results)} ticker steps once: {', '.join(results) or 'none registered'}.")
            return
        stop = threading.Event()
        _stop_on_signals(stop)
        running = [name for name in names if name not in skip]
        log.info("ticker started: every %ss, steps %s", settings.PULSE_TICK_SECONDS, ", ".join(running) or "none")
        relay = None
        if RELAY_STEP in running and not settings.PULSE_RELAY_IN_WEB:
            # Live events are relayed by a thread of their own every 50 ms: as a step they waited
            # for the next round (up to a second, longer behind a big round of schedules).
            relay = threading.Thread(target=relay_loop, args=(stop,), name="pulse-event-relay", daemon=True)
            relay.start()
            skip = [*skip, RELAY_STEP]
        ticker.run_forever(stop, interval=settings.PULSE_TICK_SECONDS, skip=set(skip))
        if relay is not None:
            relay.join(timeout=10)
        log.info("ticker stopped")


def _stop_on_signals(stop: threading.Event) -> None:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Set the event from another thread: the handler runs in the main thread, which may be
        # holding the event's own (non-reentrant) lock inside stop.wait() at that very moment.
        threading.Thread(target=stop.set, daemon=True).start()
        log.info("ticker stopping on %s", signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
