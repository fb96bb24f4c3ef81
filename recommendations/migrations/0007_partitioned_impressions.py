"""PostgreSQL: the impressions table partitioned by ``created_at``, like the events table.

Retention of impressions then drops whole partitions (``recommendations.services.retention``).
``recommendation_id`` alone cannot stay unique on a partitioned table: ``(recommendation_id,
created_at)`` is (ids are uuid4 made by the server, one per served list, so the pair is as good).
The model state is unchanged (SQLite keeps the plain table); see
``behavior.migrations._partitioning`` and docs/partitioning.md. Non-atomic: indexes are built
CONCURRENTLY and the table lock is held only for a catalogue-only swap.
"""

from django.db import migrations

from behavior.migrations._partitioning import partition_table, unpartition_table


def forwards(apps, schema_editor):
    table = apps.get_model("recommendations", "Impression")._meta.db_table
    partition_table(schema_editor, table=table, column="created_at", unique=("recommendation_id",))


def backwards(apps, schema_editor):
    unpartition_table(schema_editor, apps.get_model("recommendations", "Impression"))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("recommendations", "0006_list_refreshes"),
        ("behavior", "0007_partitioned_events"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
