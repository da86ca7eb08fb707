from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.html import format_html

from jobs.handlers.registry import find_public_handler
from jobs.selectors import job_daemons

register = template.Library()


@register.simple_tag
def handler_link(name: str) -> str:
    """A handler's name linked to its page while the deployment has it (plain text after it is gone,
    and for an internal one, which has no page: so an old job, a delivery or a broken schedule
    never links to a 404)."""
    if find_public_handler(name) is not None:
        return format_html('<a href="{}">{}</a>', reverse("handlers:detail", args=[name]), name)
    return format_html("{}", name)


@register.inclusion_tag("jobs/_daemons.html", takes_context=True)
def daemons_panel(context: template.Context) -> dict[str, object]:
    """The team's daemons, shown apart from the other jobs with uptime and restarts."""
    team = getattr(context.get("request"), "team", None)
    return {"daemons": job_daemons(team=team) if team is not None else []}
