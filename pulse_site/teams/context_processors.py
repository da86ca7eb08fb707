from __future__ import annotations

from django.http import HttpRequest

from pulse_site.teams.authentication import ApiTokenUser
from pulse_site.teams.selectors import memberships_for_user


def team(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    # A token (the API docs page opened with one) is authenticated but is no person: no teams to list.
    if user is None or not user.is_authenticated or isinstance(user, ApiTokenUser):
        return {}
    team_ = getattr(request, "team", None)
    membership = getattr(request, "membership", None)
    return {
        "team": team_,
        "membership": membership,
        # What offers new work (New job, Retry, Run now, a schedule's switch): a member who may
        # write, of a team that takes work (a retired team's forms and actions would only refuse).
        "can_start_work": bool(membership is not None and membership.can_write
                               and team_ is not None and not team_.is_retired),
        # Evaluated lazily by the template: only pages that show the switcher pay for it.
        "my_memberships": memberships_for_user(user),
    }
