
import django.db.models.deletion
import django.utils.timezone
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        # Hand-edited: the item model is swappable (settings.RECOMMENDER_ITEM_MODEL), so the
        # dependency and the foreign key follow the setting instead of naming shop.Product.
        migrations.swappable_dependency(settings.RECOMMENDER_ITEM_MODEL),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Event',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event_id', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('visitor_id', models.CharField(blank=True, default='', max_length=64)),
                ('session_id', models.CharField(blank=True, default='', max_length=64)),
                ('event_type', models.CharField(choices=[('view', 'View'), ('click', 'Click'), ('add_to_cart', 'Add to cart'), ('remove_from_cart', 'Remove from cart'), ('wishlist', 'Wishlist'), ('purchase', 'Purchase'), ('search', 'Search')], max_length=20)),
                ('value', models.DecimalField(blank=True, decimal_places=2, max_digits=12, null=True)),
                ('quantity', models.PositiveIntegerField(default=1)),
                ('occurred_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('received_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('recommendation_id', models.UUIDField(blank=True, null=True)),
                ('placement', models.CharField(blank=True, default='', max_length=64)),
                ('position', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('context', models.JSONField(blank=True, default=dict)),
                ('is_bot', models.BooleanField(default=False)),
                ('item', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='behavior_events', to=settings.RECOMMENDER_ITEM_MODEL)),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='behavior_events', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-occurred_at'],
                'indexes': [models.Index(fields=['user', 'occurred_at'], name='behavior_ev_user_time'), models.Index(fields=['visitor_id', 'occurred_at'], name='behavior_ev_visitor_time'), models.Index(fields=['item', 'occurred_at'], name='behavior_ev_item_time'), models.Index(fields=['occurred_at'], name='behavior_ev_time'), models.Index(fields=['event_type', 'occurred_at'], name='behavior_ev_type_time'), models.Index(condition=models.Q(('recommendation_id__isnull', False)), fields=['recommendation_id'], name='behavior_ev_recommendation')],
            },
        ),
    ]
