"""Reads for the pages that belong to no single app (the overview)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pulse_site.live.models import Event
from pulse_site.teams.models import Membership, Team

RECENT_EVENTS = 50
SUMMARY_LENGTH = 120


def payload_summary(payload: Any) -> str:
    """`key: value, …` on one line, cut at SUMMARY_LENGTH; static/js/overview.js mirrors this."""
    if not isinstance(payload, dict):
        text = json.dumps(payload)
    else:
        parts = []
        for key, value in payload.items():
            shown = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            parts.append(f"{key}: {shown}")
        text = ", ".join(parts)
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 1] + "…"


@dataclass(frozen=True)
class ActivityRow:
    id: int
    kind: str
    subject: str
    summary: str
    at: Any


@dataclass(frozen=True)
class Overview:
    team: Team
    members_count: int
    activity: list[ActivityRow]

    @property
    def last_event_id(self) -> int:
        """Where the live feed resumes: rows are newest first."""
        return self.activity[0].id if self.activity else 0


def overview_for_team(team: Team) -> Overview:
    # Served by the event_team_seq index: WHERE team_id = ? ORDER BY id DESC LIMIT 50.
    events = Event.objects.filter(team=team).order_by("-id")[:RECENT_EVENTS]
    return Overview(
        team=team,
        members_count=Membership.objects.filter(team=team).count(),
        activity=[ActivityRow(e.id, e.kind, e.subject, payload_summary(e.payload), e.created_at) for e in events],
    )
