from celery import current_app
from django.core.management.base import BaseCommand
from django_celery_beat.models import PeriodicTask

from behavior.broker import tasks_in_process

SCHEDULER = "behavior.beat:Scheduler"  # django-celery-beat's, writing each run down as it starts and logging it


class Command(BaseCommand):
    help = ("Run the schedules the admin edits (Periodic tasks: scoring, training, campaigns and support rules, "
            "escalation, helpdesk retries, outcome checks) until stopped. With tasks in process, the embedded "
            "default, each task runs here when it is due; with a broker, it goes to the Celery workers, as "
            "`celery beat` sends it.")

    def add_arguments(self, parser):
        parser.add_argument("--loglevel", default="INFO", help="Celery's log level (default INFO: a line per task)")

    def handle(self, *, loglevel, **options):
        app = current_app._get_current_object()
        where = "in this process" if tasks_in_process() else "to the Celery workers"
        enabled = PeriodicTask.objects.filter(enabled=True).order_by("name")
        self.stdout.write(f"Running {enabled.count()} schedules; their tasks run {where}. Ctrl-C stops.")
        for task in enabled:
            self.stdout.write(f"  {task.name}: {_when(task)}")
        self.stdout.flush()
        # Beat re-reads the schedules when one is changed in the admin (django-celery-beat's change stamp).
        app.Beat(scheduler=SCHEDULER, loglevel=loglevel, quiet=True).run()


def _when(task: PeriodicTask) -> str:
    if task.crontab:
        text = task.crontab.human_readable
        return text[:1].lower() + text[1:]
    return str(task.interval or task.clocked or task.solar)
