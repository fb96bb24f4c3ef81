"""Bulk writing of computed profiles and their tag rows (the last step of a rebuild).

On Postgres the rows are COPYed into a temporary table and merged with one
``INSERT .. SELECT .. ON CONFLICT (user_id) DO UPDATE``: 100,000 profiles take a few
seconds, where ``bulk_create(update_conflicts=True)`` built a model instance and a
parameter list per row. Other databases use ``bulk_create`` in batches. Callers run this
inside ``transaction.atomic()`` (the temporary table is dropped at commit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, models, router

from behavior.services.copy_format import copy_text, json_text
from recommendations.models import ProfileTag, UserProfile

# Field names of one profile row, in the order of the tuples given to ``write_profiles``.
PROFILE_COLUMNS: tuple[str, ...] = (
    "user",
    "segment",
    "tags",
    "features",
    "propensity",
    "propensity_source",
    "is_outlier",
    "outlier_reason",
    "last_activity_at",
    "updated_at",
    "model_version",
    "notes",
)
_COPY_BLOCK = 5000


def _concrete_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    """The field ``name`` of ``model`` (a model field, not a reverse relation)."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise LookupError(f"{model._meta.label}.{name} is a reverse relation, not a field")
    return field


def _column(model: type[models.Model], name: str, alias: str) -> str:
    """The quoted database column of the field ``name`` of ``model``."""
    column = _concrete_field(model, name).column
    if not column:
        raise LookupError(f"{model._meta.label}.{name} has no database column")
    return connections[alias].ops.quote_name(column)


def _profile_line(row: tuple[Any, ...]) -> str:
    """One COPY text line of a profile row (field order: ``PROFILE_COLUMNS``)."""
    pk, segment, tags, features, propensity, source, outlier, reason, last, updated, version, notes = row
    return (
        f"{copy_text(pk)}\t{copy_text(segment)}\t{json_text(tags)}\t{json_text(features)}\t"
        f"{copy_text(propensity)}\t{copy_text(source)}\t{'t' if outlier else 'f'}\t{copy_text(reason)}\t"
        f"{copy_text(last)}\t{copy_text(updated)}\t{copy_text(version)}\t{json_text(notes)}\n"
    )


def write_profiles(
    rows: Sequence[tuple[Any, ...]],
    tag_rows: Sequence[tuple[Any, str, float]],
    *,
    batch_size: int = 5000,
    analyze: bool = True,
) -> None:
    """Upsert profile ``rows`` (tuples following ``PROFILE_COLUMNS``; segment = Segment pk or None)
    and insert ``tag_rows`` ``(profile pk, label, weight)``; the caller deleted the old tags.

    ``analyze=False`` leaves the tables' statistics to the caller (a rebuild in chunks refreshes
    them once, when it closes: :func:`analyze_profiles` or :func:`vacuum_profiles`).
    """
    alias = router.db_for_write(UserProfile)
    if connections[alias].vendor == "postgresql":
        _copy_profiles(alias, rows, tag_rows)
        if analyze:
            analyze_profiles()
        return
    fields = [_concrete_field(UserProfile, name) for name in PROFILE_COLUMNS]
    for start in range(0, len(rows), batch_size):
        profiles = [
            UserProfile(**{field.attname: value for field, value in zip(fields, row, strict=True)})
            for row in rows[start : start + batch_size]
        ]
        UserProfile.objects.bulk_create(
            profiles, update_conflicts=True, unique_fields=["user"], update_fields=list(PROFILE_COLUMNS[1:])
        )
    ProfileTag.objects.bulk_create(
        [ProfileTag(profile_id=pk, label=label, weight=weight) for pk, label, weight in tag_rows],
        batch_size=batch_size,
    )


def _copy_profiles(
    alias: str, rows: Sequence[tuple[Any, ...]], tag_rows: Sequence[tuple[Any, str, float]]
) -> None:
    meta = UserProfile._meta
    table = connections[alias].ops.quote_name(meta.db_table)
    columns = [_column(UserProfile, name, alias) for name in PROFILE_COLUMNS]
    column_list = ", ".join(columns)
    with connections[alias].cursor() as cursor:
        raw = cursor.cursor
        cursor.execute(
            f"CREATE TEMPORARY TABLE rec_profile_load (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        with raw.copy(f"COPY rec_profile_load ({column_list}) FROM STDIN") as copy:
            # The COPY text is built here in large blocks: write_row() per row cost a network
            # round of the psycopg state machine for each of 100k rows.
            for start in range(0, len(rows), _COPY_BLOCK):
                copy.write("".join(_profile_line(row) for row in rows[start : start + _COPY_BLOCK]))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
        cursor.execute(
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM rec_profile_load "
            f"ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}"
        )
        cursor.execute("DROP TABLE rec_profile_load")
        tag_meta = ProfileTag._meta
        tag_table = connections[alias].ops.quote_name(tag_meta.db_table)
        tag_columns = ", ".join(_column(ProfileTag, name, alias) for name in ("profile", "label", "weight"))
        with raw.copy(f"COPY {tag_table} ({tag_columns}) FROM STDIN") as copy:
            for start in range(0, len(tag_rows), _COPY_BLOCK):
                block = tag_rows[start : start + _COPY_BLOCK]
                copy.write("".join("\t".join(map(copy_text, tag)) + "\n" for tag in block))


def analyze_profiles() -> None:
    """Postgres: fresh statistics of the profile tables (nothing elsewhere).

    The admin's planner choices and its row estimate (the unfiltered list's count) must not wait
    for autovacuum after 100k rows changed at once.
    """
    alias = router.db_for_write(UserProfile)
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in (UserProfile, ProfileTag):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def vacuum_profiles() -> bool:
    """Postgres, outside a transaction: VACUUM (ANALYZE) the profile tables; True when it ran.

    A full rebuild rewrites every profile (an upsert leaves the old row version behind), so
    without it the admin's filtered counts read 100k dead rows and the heap instead of the
    index (a count of "propensity 50-80 %" then reads every page of the table).
    """
    alias = router.db_for_write(UserProfile)
    connection = connections[alias]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    with connection.cursor() as cursor:
        for model in (UserProfile, ProfileTag):
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(model._meta.db_table)}")
    return True
