"""The IANA time zones a team, a budget or a schedule may be in: one list for every form, API
and model, so what one accepts the others do."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

# Names in the zone database that are no place: "localtime" is the host's own zone (a link to
# /etc/localtime), another zone on each machine of a deployment; "Factory" reads "-00".
NOT_PLACES = frozenset({"localtime", "Factory"})


@lru_cache(maxsize=1)
def zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NOT_PLACES


def zone_refusal(name: object) -> str:
    """Why `name` is no zone a team may be in, in the words every field uses."""
    return f"'{name}' is not an IANA time zone name (e.g. Europe/Berlin)."
