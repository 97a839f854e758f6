"""The default schedules: score every hour, train every week. Both are edited in the admin."""

from django.db import migrations

SCHEDULES = [
    # name, task, how often, expires after (seconds): a late run is dropped rather than piling up
    ("Score customers hourly", "behavior.tasks.score_customers", {"interval": (1, "hours")}, 50 * 60),
    ("Train models weekly", "behavior.tasks.train_models", {"crontab": ("0", "3", "mon")}, 24 * 60 * 60),
]


def add_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    for name, task, when, expire_seconds in SCHEDULES:
        if "interval" in when:
            every, period = when["interval"]
            schedule = {"interval": IntervalSchedule.objects.get_or_create(every=every, period=period)[0]}
        else:
            minute, hour, day_of_week = when["crontab"]
            schedule = {"crontab": CrontabSchedule.objects.get_or_create(
                minute=minute, hour=hour, day_of_week=day_of_week, day_of_month="*", month_of_year="*",
                timezone="UTC")[0]}
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "expire_seconds": expire_seconds,
                                                                **schedule})


def remove_schedules(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[s[0] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("behavior", "0002_models_and_scores"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_schedules, remove_schedules)]
