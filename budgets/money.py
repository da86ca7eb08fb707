"""Money: integer micro-units in the database, Decimal in Python, strings in JSON.

SQLite has no decimal type and floats drift, so every amount crosses the database boundary as a
whole number of millionths.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from pulse_site.errors import ValidationError

MICROS = Decimal("1000000")
PLACES = 6
# A ceiling far above any real budget that still fits a signed 64-bit column in micro-units.
MAX_AMOUNT = Decimal("1000000000000")
# How an amount is written: ASCII digits with an optional decimal point. Decimal() itself would
# also take "1e3", "1_000" and other scripts' digits, which no one means as money. A minus is
# matched only to be refused as negative; a plus or spaces around it are no part of an amount
# (the API documents the pattern below; the dashboard's forms strip what a person typed).
PLAIN_AMOUNT = re.compile(r"-?(?:[0-9]+(?:\.([0-9]*))?|\.([0-9]+))")
# The OpenAPI pattern of a written amount, PLAIN_AMOUNT without the sign and with six decimals at most.
AMOUNT_PATTERN = r"^(\d+(\.\d{0,6})?|\.\d{1,6})$"


def to_micros(amount: Decimal) -> int:
    return int(amount * MICROS)


def from_micros(micros: int | None) -> Decimal | None:
    if micros is None:
        return None
    return (Decimal(micros) / MICROS).quantize(Decimal(1).scaleb(-PLACES))


def money_str(micros: int | None) -> str | None:
    value = from_micros(micros)
    return None if value is None else format(value.normalize() if value != 0 else Decimal("0"), "f")


def money_text(micros: int | None) -> str | None:
    """money_str as people read it: the whole part grouped by thousands (999,999,999.99), as the
    dashboard groups its counts. For pages, live fragments, charts and sentences; form inputs, the
    API's amounts, events' fields and CSV keep money_str's plain digits, which are read back."""
    value = money_str(micros)
    return None if value is None else grouped(value)


def grouped(amount: str) -> str:
    """A plain amount, as money_str writes it and events' payloads carry it, grouped by thousands;
    text that is no plain amount is returned as it is."""
    if not PLAIN_AMOUNT.fullmatch(amount):
        return amount
    return format(Decimal(amount), ",f")


def parse_money(value: object, *, field: str, written: bool = True) -> Decimal:
    """A non-negative amount with at most six decimals, from a string, int or Decimal.

    Floats are refused on purpose: 0.1 as a float is not 0.1, and a money API must not guess.
    `written`: a string comes from a person (API, forms, admin) and must be plain digits; False for
    a handler's own values (`str()` of a Decimal may read "1E+3"), which are rounded up to a
    micro-unit instead of refused.
    """
    if isinstance(value, bool) or value is None:
        raise ValidationError.for_field(field, "Give an amount as a string, e.g. \"1.50\".")
    if isinstance(value, float):
        raise ValidationError.for_field(field, "Give the amount as a string (e.g. \"0.10\"), not a float.")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise ValidationError.for_field(field, f"'{value}' is not an amount.") from None
    if not amount.is_finite():
        raise ValidationError.for_field(field, "The amount must be a finite number.")
    plain = None if isinstance(value, Decimal) else PLAIN_AMOUNT.fullmatch(str(value))
    if written and plain is None and not isinstance(value, Decimal):
        raise ValidationError.for_field(field, f"'{value}' is not an amount: write digits with a decimal point, "
                                               "e.g. 10.50.")
    if amount < 0 or (written and str(value).startswith("-")):
        raise ValidationError.for_field(field, "The amount cannot be negative.")
    if written and plain is not None and len(plain.group(1) or plain.group(2) or "") > PLACES:
        # By digits, as written: "1.0000000" is refused like "1.0000001", never read as 1.
        raise ValidationError.for_field(field, f"At most {PLACES} decimal places.")
    if amount > MAX_AMOUNT:
        raise ValidationError.for_field(field, f"The amount cannot exceed {MAX_AMOUNT}.")
    # By value, not by digits: Decimal arithmetic keeps trailing zeros (0.0000004 * 1000 is
    # 0.0004000), and a whole number of micro-units is an amount however it is written.
    whole = amount.quantize(Decimal(1).scaleb(-PLACES), rounding=ROUND_CEILING)
    if amount != whole:
        if written:
            raise ValidationError.for_field(field, "At most 6 decimal places.")
        # A handler's own arithmetic (a price per token times tokens) may come out finer than a
        # micro-unit: rounded up, so that a budget never counts less than was spent.
        return whole
    return amount
