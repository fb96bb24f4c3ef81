# Merchandising rules, and the ids of the rules that applied to each served list.

import django.core.validators
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('recommendations', '0009_profile_rebuilds'),
    ]

    operations = [
        migrations.CreateModel(
            name='MerchandisingRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('placement', models.CharField(blank=True, default='', help_text="The block the rule applies to: home, default (the API's list), similar, bought_together, cart, popular, or a placement your templates name. Empty: every placement.", max_length=64, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9_.:-]{1,64}$', 'Letters, digits and _ . : - only (at most 64).')], verbose_name='placement')),
                ('action', models.CharField(choices=[('pin', 'Pin (at a position)'), ('boost', 'Boost (move up)'), ('bury', 'Bury (move down)'), ('exclude', 'Exclude (never show)')], max_length=8, verbose_name='action')),
                ('item_key', models.CharField(blank=True, default='', help_text='The item\'s key (the demo: its SKU). Give an item or a category.', max_length=255, verbose_name='item')),
                ('category_key', models.CharField(blank=True, default='', help_text="The category's key as the shop's adapter gives it (the demo: its slug).", max_length=255, verbose_name='category')),
                ('position', models.PositiveSmallIntegerField(blank=True, help_text='Pins only: the 1-based position the item is shown at.', null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='position')),
                ('strength', models.PositiveSmallIntegerField(default=1, help_text='Boosts and buries: how many places the item moves up or down.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(50)], verbose_name='strength')),
                ('starts_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='starts at')),
                ('ends_at', models.DateTimeField(blank=True, help_text='Empty: applies until switched off.', null=True, verbose_name='ends at')),
                ('active', models.BooleanField(default=True, verbose_name='active')),
                ('created_by', models.CharField(blank=True, default='', editable=False, max_length=150, verbose_name='created by')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name='created at')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
                ('note', models.TextField(blank=True, default='', verbose_name='note')),
            ],
            options={
                'verbose_name': 'merchandising rule',
                'verbose_name_plural': 'merchandising rules',
                'ordering': ['placement', 'action', 'position', 'pk'],
                'indexes': [models.Index(fields=['active', 'ends_at'], name='rec_merch_rule_in_force')],
            },
        ),
        migrations.AddField(
            model_name='impression',
            name='merchandising_rule_ids',
            field=models.JSONField(blank=True, null=True, verbose_name='merchandising rules'),
        ),
    ]
