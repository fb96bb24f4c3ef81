"""The events table's foreign-key checks done once per chunk instead of once per row (Postgres).

:func:`reference_locks` says whether that is safe and builds the lock queries;
:func:`lock_references` runs them for one chunk. Used by :func:`behavior.services.bulkload.copy_chunk`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection

from behavior.models import Event
from behavior.services.storage import concrete_fields

__all__ = ["ReferenceLock", "array_literal", "lock_references", "reference_locks"]


@dataclass(frozen=True)
class ReferenceLock:
    """One single-column foreign key of the events table, checked for a whole chunk at once.

    ``sql`` takes the chunk's distinct non-null values of column ``index`` (of
    ``COLUMNS``) and answers how many referenced rows exist, locking them
    ``FOR KEY SHARE`` until the commit: the very lock and check of Postgres' per-row
    foreign-key trigger, once per chunk instead of once per row.
    """

    index: int
    sql: str


def reference_locks() -> list[ReferenceLock] | None:
    """Lock queries standing in for the events table's foreign-key triggers, or None.

    None (keep the triggers) unless the role may ``SET session_replication_role``
    (superuser, or PG 15's ``GRANT SET ON PARAMETER``), every foreign key is a
    single column of ``COLUMNS``, and the table has no trigger or rule of its
    own that replica mode would also switch off. Postgres only.
    """
    if connection.vendor != "postgresql":
        return None
    table = Event._meta.db_table
    columns = {f.column: i for i, f in enumerate(concrete_fields())}
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('is_superuser') = 'on'")
        allowed = cursor.fetchone()[0]
        if not allowed and getattr(connection, "pg_version", 0) >= 150000:
            cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
            allowed = cursor.fetchone()[0]
        cursor.execute(
            "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal)"
            " + (SELECT count(*) FROM pg_rules WHERE tablename = %s)",
            [table, table],
        )
        if not allowed or cursor.fetchone()[0]:
            return None
        cursor.execute(
            "SELECT a.attname, r.relname, ra.attname, format_type(ra.atttypid, ra.atttypmod), "
            "cardinality(c.conkey) FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "JOIN pg_class r ON r.oid = c.confrelid "
            "JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1] "
            "WHERE c.conrelid = %s::regclass AND c.contype = 'f'",
            [table],
        )
        keys = cursor.fetchall()
    quote = connection.ops.quote_name
    locks = []
    for column, referenced, referenced_column, type_name, width in keys:
        if width != 1 or column not in columns:
            return None
        locks.append(
            ReferenceLock(
                index=columns[column],
                sql=f"SELECT count(*) FROM (SELECT 1 FROM {quote(referenced)} "
                # IN (SELECT unnest(...)): the array is parsed once (as "= ANY(...)" it is
                # not a constant, and a sequential scan would parse it for every row).
                f"WHERE {quote(referenced_column)} IN (SELECT unnest(%s::text::{type_name}[])) "
                "FOR KEY SHARE) AS locked",
            )
        )
    return locks


def array_literal(values: list[Any]) -> str:
    """``values`` as the text of a Postgres array: ``{1,2}`` for integers, else ``{"a","b"}``.

    Thousands of ids per chunk: one string parameter costs a fraction of adapting the
    list value by value, and the quoted form suits any other key type (the query casts it).
    """
    if set(map(type, values)) <= {int}:  # the usual integer keys need no quoting
        return "{" + ",".join(map(str, values)) + "}"
    quoted = (str(value).replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return "{" + ",".join(f'"{text}"' for text in quoted) + "}"


def lock_references(references: list[tuple[ReferenceLock, list[Any]]]) -> bool:
    """Lock every row a chunk refers to (each lock with the chunk's values of its column);
    False if one is missing (then the triggers decide)."""
    with connection.cursor() as cursor:
        for lock, values in references:
            if values:
                cursor.execute(lock.sql, [array_literal(values)])
                if cursor.fetchone()[0] != len(values):
                    return False
    return True
