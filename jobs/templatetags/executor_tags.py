"""The executor panel on the overview (re-rendered with the live fragment) and its filters."""

from __future__ import annotations

from typing import Any

from django import template

from jobs.executor import executor_status

register = template.Library()


@register.inclusion_tag("pulse/_executor.html")
def executor_panel(team: Any) -> dict[str, Any]:
    """The team's executor at a glance: state, jobs, totals, throughput, workers."""
    return {"ex": executor_status(team=team)}


@register.filter
def bytes_human(value: int | None) -> str:
    """1536 -> 1.5 KiB; memory as people read it."""
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover (the loop returns)


@register.filter
def rate(value: float | None) -> str:
    """0 to 1 as a percentage with one decimal; — before anything finished."""
    return "—" if value is None else f"{value * 100:.1f} %"


@register.filter
def per_second(value: float) -> str:
    """Jobs per second, with the precision a small number needs."""
    if value == 0:
        return "0"
    return f"{value:.2f}" if value >= 1 else f"{value:.3g}"
