"""Reads of notification targets as one reader may see them."""

from __future__ import annotations

from pulse_site.notifications.addresses import mask_url
from pulse_site.notifications.models import Target


def target_address_shown(*, target: Target, may_manage: bool) -> tuple[str, bool]:
    """The target's address as the reader sees it, and whether it is masked: a webhook's URL in
    full to those who manage notifications, else `scheme://host[:port]/…` (mask_url), as it may
    carry the receiver's secret; an email address to everyone in the team (it is no secret)."""
    if may_manage or target.kind != Target.Kind.WEBHOOK:
        return target.address, False
    return mask_url(target.address), True
