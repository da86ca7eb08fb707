from __future__ import annotations

from django.http import HttpRequest

from pulse_site.teams.selectors import memberships_for_user


def team(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "team": getattr(request, "team", None),
        "membership": getattr(request, "membership", None),
        # Evaluated lazily by the template: only pages that show the switcher pay for it.
        "my_memberships": memberships_for_user(user),
    }
