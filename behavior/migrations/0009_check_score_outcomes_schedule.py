"""Every day at 04:00 UTC, the kept scores of past runs are checked against what customers did."""

from django.db import migrations

NAME = "Check how kept scores turned out"


def add_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    daily = CrontabSchedule.objects.get_or_create(minute="0", hour="4", day_of_week="*", day_of_month="*",
                                                  month_of_year="*", timezone="UTC")[0]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.get_or_create(name=NAME, defaults={
        "task": "behavior.tasks.check_score_outcomes", "crontab": daily, "expire_seconds": 23 * 60 * 60})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("behavior", "0008_past_scores"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
