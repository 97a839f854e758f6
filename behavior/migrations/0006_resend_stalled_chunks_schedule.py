"""Every five minutes, chunks of a scoring run whose message or worker was lost are sent again."""

from django.db import migrations

NAME = "Resend stalled scoring chunks"


def add_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    every_five_minutes = IntervalSchedule.objects.get_or_create(every=5, period="minutes")[0]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.get_or_create(name=NAME, defaults={
        "task": "behavior.tasks.resend_stalled_chunks", "interval": every_five_minutes, "expire_seconds": 4 * 60})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("behavior", "0005_scoring_chunks"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
