"""Reads of notification targets as one reader may see them."""

from __future__ import annotations

from pulse_site.notifications.addresses import mask_url
from pulse_site.notifications.models import Target
from pulse_site.teams.models import Membership


def target_address_shown(*, target: Target, may_manage: bool) -> tuple[str, bool]:
    """The target's address as the reader sees it, and whether it is masked: a webhook's URL in
    full to those who manage notifications, else `scheme://host[:port]/…` (mask_url), as it may
    carry the receiver's secret; an email address to everyone in the team (it is no secret)."""
    if may_manage or target.kind != Target.Kind.WEBHOOK:
        return target.address, False
    return mask_url(target.address), True


def address_deactivated_members(*, team_id: int, address: str) -> list[str]:
    """The usernames of the team's members whose email is `address` (in any case, spaces around
    either ignored), when every one of them is deactivated; empty when an active member has it
    or no member does. Only this team's members count: another team's, or a user in no team, say
    nothing of whom this team's mail reaches."""
    address = (address or "").strip().lower()
    if not address:
        return []
    holders = [(m.user.get_username(), m.user.is_active) for m in Membership.objects.filter(
        team_id=team_id, user__email__icontains=address).select_related("user").order_by("user__username")
               if (m.user.email or "").strip().lower() == address]
    return [] if any(active for _, active in holders) else [name for name, _ in holders]
