"""Every hour the live campaigns are evaluated without waiting for a scoring run, so a condition that needs no
score (consent, days since the last purchase) acts on a shop that has never trained or scored.

Hourly: a campaign assigns a customer at most once per period (a day at least), so an hour's wait costs little,
and each evaluation reads every customer's condition fields; it also matches the scoring schedule, after which
campaigns are evaluated too (the second of the two finds the period's assignments made).
"""

from django.db import migrations

NAME = "Evaluate campaigns"


def add_schedule(apps, schema_editor):
    hourly = apps.get_model("django_celery_beat", "IntervalSchedule").objects.get_or_create(every=1, period="hours")[0]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.get_or_create(name=NAME, defaults={
        "task": "campaigns.tasks.evaluate_campaigns", "interval": hourly, "expire_seconds": 50 * 60})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0008_uplift_targeting"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
