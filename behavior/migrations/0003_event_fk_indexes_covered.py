"""Drop the single-column indexes of Event.user and Event.item.

The composite indexes (user, occurred_at) and (item, occurred_at) begin with the same
columns and serve every lookup by user or item, including CASCADE deletes; the two
extra b-trees only made each inserted event ~20% more expensive.
"""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("behavior", "0002_event_time_brin"),
        # Hand-edited like 0001: the item model is swappable (settings.RECOMMENDER_ITEM_MODEL).
        migrations.swappable_dependency(settings.RECOMMENDER_ITEM_MODEL),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="event",
            name="item",
            field=models.ForeignKey(
                blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE,
                related_name="behavior_events", to=settings.RECOMMENDER_ITEM_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="user",
            field=models.ForeignKey(
                blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE,
                related_name="behavior_events", to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
