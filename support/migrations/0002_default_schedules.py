"""The default schedules: deliver the helpdesk outbox every minute, escalate overdue tickets every 5 minutes."""

from django.db import migrations

SCHEDULES = [
    # name, task, every (minutes), expires after (seconds): a late run is dropped rather than piling up
    ("Deliver ticket changes to the helpdesk", "support.tasks.deliver_outbox", 1, 55),
    ("Escalate overdue tickets", "support.tasks.escalate_overdue_tickets", 5, 4 * 60),
]


def add_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    for name, task, minutes, expire_seconds in SCHEDULES:
        interval = IntervalSchedule.objects.get_or_create(every=minutes, period="minutes")[0]
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": interval,
                                                                "expire_seconds": expire_seconds})


def remove_schedules(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[s[0] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("support", "0001_tickets_rules_and_outbox"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_schedules, remove_schedules)]
