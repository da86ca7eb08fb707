"""Schedule links for other apps' templates (jobs never import schedules, DESIGN §5, but a job's
page names the schedule that started it), and what a clock change does to a schedule's run."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.urls import reverse
from django.utils.html import format_html

from schedules.models import Schedule
from schedules.selectors import schedule_fire_note

register = template.Library()


@register.simple_tag
def schedule_link(team_id: int, public_id: str) -> str:
    """The team's schedule `public_id` by its name, linked to its page; the bare id (not linked) once
    it is deleted, so an old job never links to a 404."""
    name = Schedule.objects.filter(team_id=team_id, public_id=public_id).values_list("name", flat=True).first()
    if name is None:
        return format_html('<code>{}</code> <span class="quiet">(deleted)</span>', public_id)
    return format_html('<a href="{}">{}</a> <code class="quiet">{}</code>',
                       reverse("schedules:detail", args=[public_id]), name, public_id)


@register.filter
def fire_note(run: datetime, schedule: Schedule) -> str:
    """What a clock change does to this run of the schedule, "" for most runs."""
    return schedule_fire_note(schedule, run)
