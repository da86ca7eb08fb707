"""Demo schedules: Acme's every-minute report and a short sleep, Globex's hourly digest."""

from __future__ import annotations

from typing import Any

from pulse_site.teams.models import Team
from schedules.models import Schedule
from schedules.services import schedule_create, schedule_update

# team slug -> schedules (by name) the demo keeps in place.
DEMO_SCHEDULES: dict[str, list[dict[str, Any]]] = {
    "acme-analytics": [
        {"name": "Minute report", "handler": "demo.report", "payload": {"title": "Minute report", "delay": 0.5},
         "cron": "* * * * *", "description": "A three-stage report every minute: watch it fire, run and complete."},
        {"name": "Short sleep", "handler": "pulse.sleep", "payload": {"steps": 3, "seconds": 1},
         "cron": "*/2 * * * *", "description": "Three one-second steps every two minutes."},
        {"name": "Flaky upload", "handler": "pulse.fail",
         "payload": {"code": "network_error", "message": "Upload to the archive was reset by the peer (demo)"},
         "cron": "*/5 * * * *", "description": "Fails with a retryable network error: watch it retry, then fail."},
    ],
    "globex-research": [
        {"name": "Hourly digest", "handler": "demo.report", "payload": {"title": "Hourly digest", "delay": 0.2},
         "cron": "@hourly", "description": "Globex's digest at the top of every hour."},
    ],
}


def demo_schedules(teams: dict[str, Team]) -> None:
    """Create the demo schedules, or put back what was changed in them (enabled again, same cron)."""
    for slug, specs in DEMO_SCHEDULES.items():
        team = teams[slug]
        for spec in specs:
            existing = Schedule.objects.for_team(team).filter(name=spec["name"]).first()
            if existing is None:
                schedule_create(team=team, created_by="demo", **spec)
            else:
                schedule_update(schedule=existing, changes={**spec, "enabled": True}, by="demo")
