from __future__ import annotations

from pulse_site.notifications.services import notifications_match
from pulse_site.ticker import step


@step("notifications.match", every=2.0, atomic=False)
def match() -> int:
    return notifications_match()
