"""Fast bulk inserts for the demo generator: COPY on Postgres, bulk_create / executemany elsewhere."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.core.management.color import no_style
from django.db import connection, models


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _complete(model: type[models.Model], names: Sequence[str]) -> tuple[list[models.Field], list[Any]]:
    """The model's concrete fields named in ``names`` plus every other non-pk field with its default.

    Later migrations may add fields with defaults to these models; filling them here keeps
    the raw insert valid without knowing them.
    """
    given = [field for name in names if isinstance(field := model._meta.get_field(name), models.Field)]
    given_names = {f.name for f in given}
    extra = [
        f
        for f in model._meta.concrete_fields
        if f.name not in given_names and not f.primary_key and f.has_default()
    ]
    return given + extra, [f.get_default() for f in extra]


def insert_rows(model: type[models.Model], names: Sequence[str], rows: Sequence[tuple]) -> None:
    """Insert plain tuples (values in ``names`` order, foreign keys as ids) into the model's table.

    Postgres: ``COPY``, with ``synchronous_commit = off`` for the rest of the caller's
    transaction (the whole seed is one): its commit then does not wait for the WAL flush.
    Safe for demo data only: after a Postgres crash it is simply generated again, and no
    shopper was ever told that these rows were stored. Never used for real events.
    """
    if not rows:
        return
    fields, defaults = _complete(model, names)
    columns = ", ".join(connection.ops.quote_name(f.column or f.attname) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        if is_postgres():
            if connection.in_atomic_block:  # SET LOCAL outside a transaction would only warn
                cursor.execute("SET LOCAL synchronous_commit = off")
            json_positions = [i for i, f in enumerate(fields) if isinstance(f, models.JSONField)]
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    values = list(row) + defaults
                    for i in json_positions:  # jsonb columns take JSON text in COPY
                        values[i] = "{}" if values[i] in (None, {}) else json.dumps(values[i])
                    copy.write_row(values)
            return
        placeholders = ", ".join(["%s"] * len(fields))
        prepared = [
            [f.get_db_prep_save(v, connection) for f, v in zip(fields, list(row) + defaults, strict=True)]
            for row in rows
        ]
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", prepared)


def reset_sequences(*model_classes: type[models.Model]) -> None:
    """After inserting explicit ids, move Postgres sequences past them (no-op elsewhere)."""
    statements = connection.ops.sequence_reset_sql(no_style(), list(model_classes))
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
