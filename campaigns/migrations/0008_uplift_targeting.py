"""Campaigns may keep to the customers they persuade most; each learns whom, weekly (Mondays 05:00 UTC)."""

import django.core.validators
from decimal import Decimal
from django.db import migrations, models


NAME = "Learn whom uplift-targeted campaigns persuade"


def add_schedule(apps, schema_editor):
    weekly = apps.get_model("django_celery_beat", "CrontabSchedule").objects.get_or_create(
        minute="0", hour="5", day_of_week="mon", day_of_month="*", month_of_year="*", timezone="UTC")[0]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.get_or_create(name=NAME, defaults={
        "task": "campaigns.tasks.learn_uplift", "crontab": weekly, "expire_seconds": 24 * 60 * 60})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0007_action_settings_models'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.AddField(
            model_name='campaign',
            name='uplift_top_count',
            field=models.PositiveIntegerField(blank=True, help_text='Keep to at most this many customers of the audience, those with the highest predicted uplift (with the share above, the smaller of the two).', null=True, validators=[django.core.validators.MinValueValidator(1)]),
        ),
        migrations.AddField(
            model_name='campaign',
            name='uplift_top_percent',
            field=models.DecimalField(blank=True, decimal_places=2, help_text="Keep to this share of the audience: those the campaign's uplift model expects its action to persuade most (the control group is held out from them). Until the campaign has such a model, learnt from its own treatment and control groups, the condition alone chooses.", max_digits=5, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0.01')), django.core.validators.MaxValueValidator(100)]),
        ),
        migrations.RunPython(add_schedule, remove_schedule),
    ]
