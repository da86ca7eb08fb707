"""Reads of notification targets as one reader may see them."""

from __future__ import annotations

from pulse_site.notifications.addresses import mask_url
from pulse_site.notifications.models import Target
from pulse_site.teams.models import ApiToken, Membership


def notifications_may_manage(*, membership: Membership | None, token: ApiToken | None = None) -> bool:
    """Whether the reader manages the team's notifications, and so sees what only they may:
    webhook URLs in full, signing secrets, the page's buttons. Owners and admins signed in
    (Membership.can_manage, as manager_required and the API's ManagersChange ask); a token never,
    whatever its access."""
    return token is None and membership is not None and membership.can_manage


def target_address_shown(*, target: Target, may_manage: bool) -> tuple[str, bool]:
    """The target's address as the reader sees it, and whether it is masked: a webhook's URL in
    full to those who manage notifications, else `scheme://host[:port]/…` (mask_url), as it may
    carry the receiver's secret; an email address to everyone in the team (it is no secret)."""
    if may_manage or target.kind != Target.Kind.WEBHOOK:
        return target.address, False
    return mask_url(target.address), True
