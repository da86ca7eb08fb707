from __future__ import annotations

from django import template

from jobs.selectors import job_daemons

register = template.Library()


@register.inclusion_tag("jobs/_daemons.html", takes_context=True)
def daemons_panel(context: template.Context) -> dict[str, object]:
    """The team's daemons, shown apart from the other jobs with uptime and restarts."""
    team = getattr(context.get("request"), "team", None)
    return {"daemons": job_daemons(team=team) if team is not None else []}
