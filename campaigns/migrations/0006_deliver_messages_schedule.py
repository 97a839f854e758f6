"""Every minute, message campaigns' due messages are sent (a committed evaluation also wakes a sender)."""

from django.db import migrations

NAME = "Send campaign messages"


def add_schedule(apps, schema_editor):
    every_minute = apps.get_model("django_celery_beat", "IntervalSchedule").objects.get_or_create(
        every=1, period="minutes")[0]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.get_or_create(name=NAME, defaults={
        "task": "campaigns.tasks.deliver_messages", "interval": every_minute, "expire_seconds": 50})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0005_messages"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
