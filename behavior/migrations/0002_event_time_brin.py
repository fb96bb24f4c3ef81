"""A BRIN index on Event.occurred_at for time-range scans on Postgres (no-op elsewhere).

BRIN is tiny and ideal for an append-only table whose rows arrive roughly in time
order. Built CONCURRENTLY in a non-atomic migration so that it never locks writers.
"""
from django.db import migrations


def create_brin(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("behavior", "Event")._meta.db_table
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS behavior_ev_time_brin ON {table} USING brin (occurred_at)"
    )


def drop_brin(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS behavior_ev_time_brin")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("behavior", "0001_initial_events")]

    operations = [migrations.RunPython(create_brin, drop_brin)]
