"""Reads and writes of whole model rows in few round trips, for PostgreSQL's hot paths.

On the path from a submit to a handler's start every statement counts: Django's ORM spends
0.3–0.5 ms of Python compiling each one on a machine like ours, more than PostgreSQL takes to run
it (a round trip is ~0.1 ms, an INSERT ~0.15 ms). The helpers here build their SQL from the
models' own field definitions (column lists cached per model, each value prepared and converted
by its field as the ORM would), so the rows written and read are the ORM's rows, and:

- `WriteBatch` sends several INSERTs and UPDATEs as one statement (data-modifying CTEs): one
  parse, one round trip. Only for writes that touch different rows (the CTEs of one statement do
  not see each other's changes) and whose results the caller needs only as row counts.
- `columns` and `from_row` read a model's row out of a hand-written SELECT that joins several
  tables (one locking read instead of one per table).

The SQL here and in its callers (marked `nosec B608` for bandit) is composed of nothing but the
models' own table and column names, quoted by the backend; every value is a bound parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

M = TypeVar("M", bound=models.Model)


def _db() -> BaseDatabaseWrapper:
    # The thread's connection itself: `django.db.connection` is a proxy that looks it up again on
    # every attribute, and these helpers touch it once per value.
    return connections[DEFAULT_DB_ALIAS]


@cache
def _fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    return tuple(model._meta.concrete_fields)


@cache
def _column(field: Any) -> str:
    """A concrete field's column (the type allows None: a relation's reverse side has none)."""
    column: str | None = field.column
    if column is None:
        raise TypeError(f"{field!r} has no column")
    return column


def _insert_fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    # The primary key is the database's (serial) unless the model sets it itself.
    pk = model._meta.pk
    return tuple(f for f in _fields(model) if not (f is pk and getattr(f, "db_returning", False)))


@cache
def _insert_sql(model: type[models.Model], rows: int, vendor: str) -> str:
    q = _db().ops.quote_name
    names = ", ".join(q(_column(f)) for f in _insert_fields(model))
    row = "(" + ", ".join(["%s"] * len(_insert_fields(model))) + ")"
    pk = q(_column(model._meta.pk))
    values = ", ".join([row] * rows)
    return f"INSERT INTO {q(model._meta.db_table)} ({names}) VALUES {values} RETURNING {pk} AS k"  # nosec B608


def columns(model: type[models.Model], alias: str) -> str:
    """The select list of every concrete column of `model` under the table alias `alias`."""
    return ", ".join(f"{alias}.{_db().ops.quote_name(_column(f))}" for f in _fields(model))


def width(model: type[models.Model]) -> int:
    return len(_fields(model))


@cache
def _converters(model: type[models.Model], vendor: str) -> tuple[tuple[Any, tuple[Any, ...]], ...]:
    # The backend's converters (SQLite's text dates) and then the field's (JSON), as the ORM
    # applies them to a column it selected.
    db, table = _db(), model._meta.db_table
    result = []
    for field in _fields(model):
        column = field.get_col(table)
        result.append((column, tuple(db.ops.get_db_converters(column) + field.get_db_converters(db))))
    return tuple(result)


def from_row(model: type[M], row: Sequence[Any], offset: int = 0) -> M:
    """The instance of `model` whose `columns` start at `row[offset]`, as the ORM would load it."""
    db = _db()
    values = []
    for index, (column, converters) in enumerate(_converters(model, db.vendor)):
        value = row[offset + index]
        for converter in converters:
            value = converter(value, column, db)
        values.append(value)
    return model.from_db(db.alias, [f.attname for f in _fields(model)], values)


class WriteBatch:
    """INSERTs and UPDATEs collected and sent together by `flush`: one statement on PostgreSQL,
    one statement each elsewhere (SQLite, where a round trip is a function call)."""

    def __init__(self) -> None:
        # (sql, params, the inserted objects or None for an update)
        self._parts: list[tuple[str, list[Any], Sequence[models.Model] | None]] = []

    def insert(self, objs: Sequence[models.Model]) -> int:
        """Insert `objs` (all of one model, their own primary keys unset; set by `flush`);
        returns the part's index."""
        db, model = _db(), type(objs[0])
        params: list[Any] = []
        for obj in objs:
            params.extend(f.get_db_prep_save(f.pre_save(obj, True), db) for f in _insert_fields(model))
        return self._add(_insert_sql(model, len(objs), db.vendor), params, objs)

    def update(self, model: type[models.Model], pks: Sequence[int], *, where: dict[str, Any] | None = None,
               values: dict[str, Any] | None = None, add: dict[str, int] | None = None) -> int:
        """Set `values` and add `add` to the rows of `pks` that also match `where` (equalities);
        returns the part's index."""
        db, meta = _db(), model._meta
        q = db.ops.quote_name
        assignments: list[str] = []
        params: list[Any] = []
        for name, value in (values or {}).items():
            field = meta.get_field(name)
            assignments.append(f"{q(_column(field))} = %s")
            params.append(field.get_db_prep_save(value, db))  # type: ignore[union-attr]
        for name, delta in (add or {}).items():
            column = q(_column(meta.get_field(name)))
            assignments.append(f"{column} = {column} + %s")
            params.append(delta)
        conditions = [f"{q(_column(meta.pk))} IN ({', '.join(['%s'] * len(pks))})"]
        params.extend(pks)
        for name, value in (where or {}).items():
            field = meta.get_field(name)
            conditions.append(f"{q(_column(field))} = %s")
            params.append(field.get_db_prep_value(value, db))  # type: ignore[union-attr]
        table, changes, which = q(meta.db_table), ", ".join(assignments), " AND ".join(conditions)
        return self._add(f"UPDATE {table} SET {changes} WHERE {which} RETURNING 1 AS k", params, None)  # nosec B608

    def _add(self, sql: str, params: list[Any], objs: Sequence[models.Model] | None) -> int:
        self._parts.append((sql, params, objs))
        return len(self._parts) - 1

    def flush(self) -> list[int]:
        """Run every write; the row count of each, in the order they were added. Inserted
        objects get their primary keys and count as saved."""
        parts, self._parts = self._parts, []
        if not parts:
            return []
        db = _db()
        with db.cursor() as cursor:
            if db.vendor == "postgresql":
                ctes = ", ".join(f"w{index} AS ({sql})" for index, (sql, _, _) in enumerate(parts))
                results = ", ".join(f"(SELECT array_agg(k) FROM w{index})"  # nosec B608
                                    for index in range(len(parts)))
                cursor.execute(f"WITH {ctes} SELECT {results}", [p for _, params, _ in parts for p in params])
                returned = [list(keys or ()) for keys in cursor.fetchone()]
            else:
                returned = []
                for sql, params, _ in parts:
                    cursor.execute(sql, params)
                    returned.append([row[0] for row in cursor.fetchall()])
        for (_, _, objs), keys in zip(parts, returned):
            for obj, key in zip(objs or (), keys):
                obj.pk = key
                obj._state.adding = False
                obj._state.db = db.alias
        return [len(keys) for keys in returned]
