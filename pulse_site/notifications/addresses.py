"""How a webhook's URL is shown to those who may not see its secret.

A webhook URL often is its own secret (Slack's /services/T…/B…/XXXX, Discord's
/api/webhooks/<id>/<token>, a ?token=), so outside the eyes of those who manage notifications it is
shown masked: its scheme, host and port kept, anything that may carry a secret (user and password,
path, query, fragment) replaced by a single "/…". Pure functions, no models: the delivery handler
uses them too.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MASK = "…"
# An http(s) URL inside a text (an error message): up to whitespace or a quote, as the messages
# write them (`POST <url> failed`, `{url!r}`).
_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)


def mask_url(url: str) -> str:
    """`scheme://host[:port]/…`: the URL without what may carry a secret. A host is no secret (it
    says which service), so one can still tell targets apart. Something that does not parse as a
    URL is masked whole."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    # The netloc as written (an IPv6 host keeps its brackets, a port stays), less any user:password@.
    host = parts.netloc.rpartition("@")[2]
    if not parts.scheme or not host:
        return MASK
    return f"{parts.scheme.lower()}://{host}/{MASK}"


def mask_urls_in(text: str) -> str:
    """`text` with every http(s) URL in it masked (mask_url): for messages that name a webhook's URL,
    or the address it was sent to, which keeps the URL's path and query."""
    return _URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)
