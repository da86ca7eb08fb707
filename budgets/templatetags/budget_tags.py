from __future__ import annotations

from typing import Any

from django import template

from budgets.money import money_str, money_text

register = template.Library()


@register.filter
def money(micros: int | None) -> str:
    """Micro-units as an amount grouped by thousands (as counts are shown), "unlimited" for None."""
    value = money_text(micros)
    return "unlimited" if value is None else value


@register.filter
def money_or_blank(micros: int | None | str) -> str:
    """For form inputs: the amount in plain digits (what the form reads back), or empty for unlimited."""
    if micros in (None, ""):
        return ""
    return money_str(int(micros)) or ""


@register.filter
def changed_fields(change: Any) -> list[tuple[str, str, str]]:
    """(field, before, after) in words for every setting a PolicyChange changed."""
    from budgets.selectors import setting_changes

    return setting_changes(change.before, change.after)


@register.inclusion_tag("budgets/_summary.html")
def budget_summary(team: Any) -> dict[str, Any]:
    """The team's pulse right now (spend per window, calls, slots, held jobs) for the overview."""
    from budgets.selectors import budget_held_count, budget_usage

    usage = budget_usage(team=team)
    thresholds = usage.thresholds
    return {
        "usage": usage,
        "windows": [(w, w.bar(thresholds), w.level(thresholds)) for w in usage.windows],
        "held_count": budget_held_count(team=team, cap=100),
    }
