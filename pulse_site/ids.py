"""Public identifiers: a type prefix and a ULID (time-sortable, 80 random bits, unguessable).

Integer primary keys never leave the server; every URL, API payload and event names rows by
their public id.
"""

from __future__ import annotations

import re

from django.db import models
from django.utils.deconstruct import deconstructible
from ulid import ULID

from pulse_site.errors import ValidationError

PUBLIC_ID_RE = re.compile(r"^[A-Z]{2}_[0-9A-HJKMNP-TV-Z]{26}$")
# The most rows one page of a list gives; the next page carries on from where it stopped (paging.cursor_seal).
MAX_PAGE = 200


def check_page_limit(limit: int) -> None:
    """Refuse a page size outside 1 to MAX_PAGE, naming `limit`."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError.for_field("limit", f"From 1 to {MAX_PAGE}.")


def new_public_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"


def looks_like_public_id(value: str, prefix: str | None = None) -> bool:
    if not PUBLIC_ID_RE.match(value or ""):
        return False
    return prefix is None or value.startswith(prefix + "_")


@deconstructible
class PublicIdFactory:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self) -> str:
        return new_public_id(self.prefix)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicIdFactory) and other.prefix == self.prefix

    def __hash__(self) -> int:
        return hash(self.prefix)


class PublicIdField(models.CharField):
    """A unique `XX_<ULID>` column filled when the instance is created."""

    def __init__(self, *args: object, prefix: str = "", **kwargs: object) -> None:
        self.prefix = prefix
        kwargs.setdefault("max_length", 29)
        kwargs.setdefault("unique", True)
        kwargs.setdefault("editable", False)
        if prefix:
            kwargs.setdefault("default", PublicIdFactory(prefix))
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["prefix"] = self.prefix
        kwargs.pop("default", None)
        return name, path, args, kwargs
