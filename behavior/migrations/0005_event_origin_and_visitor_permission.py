"""Mark who wrote an event (``origin``) and add the permission of server-to-server clients.

The column has a constant database default, so on Postgres 11+ adding it only touches the
catalogue (no rewrite of the events table) and every insert that does not name it still works.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('behavior', '0004_event_indexes_for_cheaper_inserts'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='event',
            options={'ordering': ['-occurred_at'], 'permissions': [('record_for_visitors', 'Can record events for visitor ids it names (server-to-server clients with a token)')]},
        ),
        migrations.AddField(
            model_name='event',
            name='origin',
            field=models.CharField(blank=True, choices=[('', 'Shop (its pages, the beacon, its own code)'), ('client', 'Trusted server-to-server client'), ('import', 'CSV import')], db_default='', default='', max_length=8),
        ),
    ]
