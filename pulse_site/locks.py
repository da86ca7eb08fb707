"""Cross-process locks that live in the database, so they hold across machines."""

from __future__ import annotations

import zlib

from django.db import connection


def lock_key(name: str) -> int:
    """The advisory lock key of the lock named `name` (for a statement taking it with others)."""
    return zlib.crc32(name.encode()) - 2**31


def try_transaction_lock(name: str, *, then: str | None = None) -> bool:
    """Take a lock named `name` until the current transaction ends; False if another holds it.
    `then`: a lock nobody else can hold yet, taken in the same statement when `name` is.

    PostgreSQL: a transaction-level advisory lock. SQLite: always True, because Pulse opens
    every SQLite transaction IMMEDIATE, so writers are already serialized by the database.
    """
    if connection.vendor != "postgresql":
        return True
    assert connection.in_atomic_block, "a transaction lock needs a transaction"
    with connection.cursor() as cursor:
        if then is None:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_key(name)])
        else:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s) AND pg_try_advisory_xact_lock(%s)",
                           [lock_key(name), lock_key(then)])
        return bool(cursor.fetchone()[0])


def transaction_lock(name: str) -> None:
    """Wait for the lock named `name` and hold it until the current transaction ends."""
    if connection.vendor != "postgresql":
        return
    assert connection.in_atomic_block, "a transaction lock needs a transaction"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(name)])
