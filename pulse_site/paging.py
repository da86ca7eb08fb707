"""Newest-first pages of a filter no index serves in id order, read in bounded windows.

PostgreSQL would otherwise walk the primary key backwards through a team's whole history when
little matches (1.4 s for the jobs list's `failed user=42` with a million jobs). The rows are looked
for in windows of the team's ids, newest first, at most SCAN_BUDGET ids per page; a page cut short
by the budget is shorter than the limit, and its cursor (the oldest id looked at) carries on from
there. The jobs list and the activity history read their unindexed filters this way.

The lists' cursors (cursor_seal) say where a page stopped, not which row comes next.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models
from django.utils.encoding import force_bytes

from pulse_site.errors import ValidationError

M = TypeVar("M", bound=models.Model)

SCAN_WINDOW = 20_000
SCAN_BUDGET = 100_000


def newest_first_windowed(ids: models.QuerySet[Any], rows: models.QuerySet[M], *, below: int | None,
                          limit: int) -> tuple[list[M], int | None]:
    """The page of `rows` (at most `limit`, newest first) below the primary key `below`, looked for
    in windows of `ids` (the team's primary keys, newest first, read from an index only), and the
    primary key to carry on below: the page's last row's when more match, the oldest looked at when
    the budget cut the page short, None at the end."""
    page: list[M] = []
    scanned = 0
    high = below
    while len(page) <= limit:
        window = ids if high is None else ids.filter(pk__lt=high)
        low = next(iter(window[SCAN_WINDOW - 1:SCAN_WINDOW]), None)  # the window's oldest; None: the rest is smaller
        found = rows if high is None else rows.filter(pk__lt=high)
        if low is not None:
            found = found.filter(pk__gte=low)
        page += list(found.order_by("-pk")[: limit + 1 - len(page)])
        scanned += SCAN_WINDOW
        if low is None:  # the history is exhausted
            break
        high = low
        if scanned >= SCAN_BUDGET and len(page) <= limit:
            return page, low  # cut short: carry on below the oldest looked at (looked at already)
    more = len(page) > limit
    page = page[:limit]
    return page, (page[-1].pk if more and page else None)


# --- Cursors -------------------------------------------------------------------------------------
# A page's cursor is where the page stopped: the sort key of the last row it showed (or of the
# last id a windowed read looked at), never a row. A cursor that named a row broke either way: the
# previous page's last row may be deleted by the client that read it, the next page's first row by
# anyone else, and a row may come in between the two (made or renamed there, or committed late with
# a lower id than one already read) that a next page starting at the next row as it was skips for
# good. The key holds primary keys, which never leave the server (pulse_site.ids), so it is sealed
# with AES-SIV (RFC 5297): encrypted and authenticated, the list (`scope`: which list, which team)
# as associated data, so a cursor opens for the list that gave it only. SIV is deterministic, so
# the same place in a list gives the same cursor. Its key is derived from SECRET_KEY by HKDF (RFC
# 5869); a cursor sealed under a key of SECRET_KEY_FALLBACKS still opens while Django's rotation
# keeps it.

MAX_CURSOR = 1_000  # base64 of a schedule's name of 100 characters and its key, with room
NOT_A_CURSOR = "Not a cursor of this list: pass the next_cursor a page of it gave."
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*")
_KDF_SALT = b"pulse.paging.cursor"
_KDF_INFO = b"AES-SIV-512 key of the lists' cursors"


@functools.lru_cache(maxsize=8)
def _cipher(secret: str | bytes) -> AESSIV:
    """The cipher of the cursors under `secret` (a SECRET_KEY): derived once per key, since every
    page of a list seals one and opens one."""
    key = HKDF(algorithm=hashes.SHA256(), length=64, salt=_KDF_SALT, info=_KDF_INFO).derive(force_bytes(secret))
    return AESSIV(key)


def cursor_seal(scope: str, key: list[Any]) -> str:
    """The cursor of a page of the list `scope` that stopped at `key` (its sort key, JSON)."""
    plain = json.dumps(key, separators=(",", ":"), ensure_ascii=False).encode()
    sealed = _cipher(settings.SECRET_KEY).encrypt(plain, [scope.encode()])
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def cursor_open(scope: str, cursor: str, *, refused: str = NOT_A_CURSOR) -> list[Any]:
    """The key cursor_seal sealed for the list `scope` (under SECRET_KEY or one of its fallbacks);
    a `cursor` ValidationError saying `refused` for anything else (made up, altered, another list's
    or another team's, not base64, too long, empty)."""
    raw = b""
    # Only the characters cursor_seal writes: base64 decoding would skip others (and take + and /
    # for - and _), so a cursor with one added or changed would still open.
    if len(cursor) <= MAX_CURSOR and _URL_SAFE.fullmatch(cursor):
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except binascii.Error:  # a length no base64 has
            pass
    for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        try:
            plain = _cipher(secret).decrypt(raw, [scope.encode()])
        except InvalidTag:  # not sealed under this key (or for this list), or too short to be
            continue
        key: list[Any] = json.loads(plain)
        return key
    raise ValidationError.for_field("cursor", refused)
