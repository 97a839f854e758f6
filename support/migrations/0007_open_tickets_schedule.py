"""Every hour the active support rules open their tickets, and customers' support contacts become tickets,
without waiting for a scoring run: a rule on an order already late acts on a shop that has never scored.

Hourly: against SLAs of hours and dedupe windows of days an hour's wait is small, and each pass reads every
customer's condition fields; after a scoring run the rules run as well.
"""

from django.db import migrations

NAME = "Open proactive support tickets"


def add_schedule(apps, schema_editor):
    hourly = apps.get_model("django_celery_beat", "IntervalSchedule").objects.get_or_create(every=1, period="hours")[0]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.get_or_create(name=NAME, defaults={
        "task": "support.tasks.open_support_tickets", "interval": hourly, "expire_seconds": 50 * 60})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("support", "0006_destination_help_texts"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
