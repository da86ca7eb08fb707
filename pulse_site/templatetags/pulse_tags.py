"""Filters every dashboard page uses: human durations, exact times for <time> elements."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil

register = template.Library()

_CODE_SPAN = re.compile(r"`([^`]+)`")


@register.filter
def code_spans(text: str) -> SafeString:
    """A handler author's `name` in backticks shown as code; everything else escaped as text."""
    parts = _CODE_SPAN.split(str(text))  # text, code, text, code, …, text
    return format_html_join("", "{}{}", (
        (parts[i], format_html("<code>{}</code>", parts[i + 1]) if i + 1 < len(parts) else "")
        for i in range(0, len(parts), 2)))


_LINKED_ID = re.compile(r"\b((?:JB|SP)_[0-9A-HJKMNP-TV-Z]{26})\b")
_ID_PAGES = {"JB": "jobs:detail", "SP": "schedules:detail"}


@register.filter
def id_links(text: str) -> SafeString:
    """Job and schedule ids in a sentence (a skip's or a hold's reason) linked to their pages;
    everything else escaped as text. The pages themselves say 404 for another team's id."""
    parts = _LINKED_ID.split(str(text))  # text, id, text, id, …, text
    return format_html_join("", "{}{}", (
        (parts[i], format_html('<a href="{}"><code>{}</code></a>', reverse(_ID_PAGES[parts[i + 1][:2]],
                                                                          args=[parts[i + 1]]), parts[i + 1])
         if i + 1 < len(parts) else "")
        for i in range(0, len(parts), 2)))


@register.filter
def duration(ms: int | float | None) -> str:
    """Milliseconds as a person reads them: 850 ms, 4.2 s, 3 min 20 s, 2 h 5 min, 3 d 4 h."""
    if ms is None:
        return "—"
    ms = int(ms)
    if ms < 1000:
        return f"{ms} ms"
    if ms < 59_950:  # what would read "60.0 s" reads "1 min"
        return f"{ms / 1000:.1f} s"
    minutes, sec = divmod(round(ms / 1000), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@register.filter
def seconds_duration(seconds: int | float | None) -> str:
    """Seconds read the same way as `duration` reads milliseconds."""
    return duration(None if seconds is None else seconds * 1000)


@register.inclusion_tag("pulse/_time.html")
def reltime(moment: datetime | None) -> dict[str, object]:
    """A <time> that reads "3 minutes ago" / "in 2 hours" with the exact time on hover; static/js/app.js
    keeps the words fresh and puts the exact time in the viewer's own zone (the server's is UTC)."""
    if moment is None:
        return {"iso": ""}
    utc = moment.astimezone(UTC)
    now = timezone.now()
    if abs((utc - now).total_seconds()) < 5:
        words = "just now"
    elif utc < now:
        words = f"{timesince(utc, now, depth=1)} ago"
    else:
        words = f"in {timeuntil(utc, now, depth=1)}"
    return {"iso": utc.isoformat(), "exact": utc.strftime("%Y-%m-%d %H:%M:%S UTC"), "words": words}


@register.simple_tag(takes_context=True)
def user_theme(context: template.Context) -> str:
    """The viewer's theme for <html data-theme>, read once per request."""
    from pulse_site.selectors import preference_theme

    request = context.get("request")
    if request is None:
        return ""
    if not hasattr(request, "_pulse_theme"):
        # A request refused before AuthenticationMiddleware (a Host not in ALLOWED_HOSTS) has no
        # user, and its 400 page must still render.
        request._pulse_theme = preference_theme(getattr(request, "user", None))
    return str(request._pulse_theme)


@register.simple_tag(takes_context=True)
def team_field(context: template.Context) -> str:
    """The team a form was drawn for, beside its CSRF token: a form left open in one tab while
    another switched the session's team is refused rather than applied to the other team
    (teams.decorators.team_required)."""
    from pulse_site.teams.decorators import TEAM_FIELD

    team = getattr(context.get("request"), "team", None)
    if team is None:
        return ""
    return format_html('<input type="hidden" name="{}" value="{}">', TEAM_FIELD, team.public_id)
