"""Fewer, smaller event indexes: inserting an event maintained nine, mostly for nothing.

- ``behavior_ev_time`` (b-tree on occurred_at): time ranges use the BRIN index of 0002
  on Postgres; the admin now lists by primary key.
- ``behavior_ev_type_time`` (event_type, occurred_at): no query reads by event type
  without a user or a time range.
- ``behavior_ev_item_time`` (item, occurred_at) becomes ``behavior_ev_item`` (item):
  nothing reads an item's events by time (the index serves CASCADE deletes), and b-tree
  deduplication makes the single column about a fifth of the size.
- ``behavior_ev_visitor_time`` becomes ``behavior_ev_anon_visitor_time``, the same
  columns for anonymous rows only (``WHERE user_id IS NULL``): every query by visitor id
  asks for anonymous events, and signed-in shoppers' events no longer pay for it.

On Postgres the new index is built and the old ones dropped CONCURRENTLY (a non-atomic
migration, like 0002) so that writers are never locked out of the events table; the
new index exists before the old one goes. Other databases use the schema editor.
"""

from django.db import migrations, models

ADDED = [
    models.Index(
        fields=["visitor_id", "occurred_at"],
        name="behavior_ev_anon_visitor_time",
        condition=models.Q(user__isnull=True),
    ),
    models.Index(fields=["item"], name="behavior_ev_item"),
]
DROPPED = [
    models.Index(fields=["item", "occurred_at"], name="behavior_ev_item_time"),
    models.Index(fields=["visitor_id", "occurred_at"], name="behavior_ev_visitor_time"),
    models.Index(fields=["occurred_at"], name="behavior_ev_time"),
    models.Index(fields=["event_type", "occurred_at"], name="behavior_ev_type_time"),
]


def _swap(schema_editor, model, add, remove) -> None:
    concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
    for index in add:
        schema_editor.add_index(model, index, **concurrently)
    for index in remove:
        schema_editor.remove_index(model, index, **concurrently)


def forwards(apps, schema_editor):
    _swap(schema_editor, apps.get_model("behavior", "Event"), ADDED, DROPPED)


def backwards(apps, schema_editor):
    _swap(schema_editor, apps.get_model("behavior", "Event"), DROPPED, ADDED)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("behavior", "0003_event_fk_indexes_covered")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards)],
            state_operations=[
                *[migrations.RemoveIndex(model_name="event", name=index.name) for index in DROPPED],
                *[migrations.AddIndex(model_name="event", index=index) for index in ADDED],
            ],
        )
    ]
