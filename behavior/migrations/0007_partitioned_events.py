"""PostgreSQL: the events table partitioned by ``occurred_at``; the window of recent event ids.

A partitioned table can only enforce uniqueness on keys that include the partition column, so
``event_id`` alone stops being unique there: the events table holds ``(event_id, occurred_at)``
unique (the primary key becomes ``(id, occurred_at)``), and ``RecentEventId`` keeps each
client's event id unique for ``EVENT_ID_WINDOW_DAYS`` whatever its time (docs/partitioning.md).
The model state keeps ``Event`` as it was (``SeparateDatabaseAndState`` would add nothing: the
conversion is database work only), which is what SQLite, the plain table, still has.

Non-atomic: the conversion builds its indexes CONCURRENTLY and takes the table lock only for
a catalogue-only swap, so ingest keeps running (``_partitioning.partition_table``). The
populated table becomes the partition ``behavior_event_legacy`` (up to the first day of the
month after tomorrow); monthly partitions after it are created by
``behavior.services.partition_maintenance`` at post_migrate and by the ``behavior.maintain_partitions`` task.
"""

from django.db import migrations, models
import django.utils.timezone

from behavior.migrations._partitioning import partition_table, unpartition_table

BRIN = "CREATE INDEX IF NOT EXISTS behavior_ev_time_brin ON behavior_event USING brin (occurred_at)"


def forwards(apps, schema_editor):
    table = apps.get_model("behavior", "Event")._meta.db_table
    partition_table(schema_editor, table=table, column="occurred_at", unique=("event_id",))


def backwards(apps, schema_editor):
    unpartition_table(schema_editor, apps.get_model("behavior", "Event"), indexes=(BRIN,))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("behavior", "0006_translatable_names"),
    ]

    operations = [
        migrations.CreateModel(
            name="RecentEventId",
            fields=[
                ("event_id", models.UUIDField(primary_key=True, serialize=False, verbose_name="event id")),
                ("occurred_at", models.DateTimeField(verbose_name="occurred at")),
                (
                    "received_at",
                    models.DateTimeField(
                        db_index=True, default=django.utils.timezone.now, verbose_name="received at"
                    ),
                ),
            ],
            options={
                "verbose_name": "recent event id",
                "verbose_name_plural": "recent event ids",
            },
        ),
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
