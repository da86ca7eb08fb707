"""What PostgreSQL's executed plan of a statement read: for tests that hold a query to the rows it
needs on a table of some size (an "Index Scan" that filters 20,000 rows is an index scan too, so
the rows are counted, not the node names)."""

from __future__ import annotations

import json

from django.db import connection


def rows_read(plan: dict, table: str) -> tuple[int, list[str]]:
    """The rows of `table` the executed plan read (returned or filtered away, times the loops),
    and how it read them (the types of the nodes that ran: a part of the plan a one-time filter
    kept from running reads nothing)."""
    read, how = 0, []
    stack = [plan]
    while stack:
        node = stack.pop()
        stack.extend(node.get("Plans", []))
        if node.get("Relation Name") == table:
            rows = node["Actual Rows"] + node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
            read += rows * node["Actual Loops"]
            if node["Actual Loops"]:
                how.append(node["Node Type"])
    return read, how


def assert_reads_at_most(sql: str, table: str, most: int) -> None:
    """EXPLAIN ANALYZE `sql` (as run, its values in it): at most `most` rows of `table` read, and
    only through an index (`most` 0: none read at all)."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        (plan,) = cursor.fetchone()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    read, how = rows_read(plan[0]["Plan"], table)
    assert read <= most, (read, how, sql)
    assert (how or not most) and all("Index" in node or node == "Bitmap Heap Scan" for node in how), (how, sql)
