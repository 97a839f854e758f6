
from django.core.management.base import BaseCommand, CommandError

from behavior.management.commands._common import iso_time, metrics_table
from behavior.models import ModelVersion
from behavior.services.evaluation import EvaluationError, model_version_evaluate


class Command(BaseCommand):
    help = "Metrics of a stored model version at weekly cutoffs in a time window, beside the recency/frequency rule."

    def add_arguments(self, parser):
        parser.add_argument("--model", type=int, help="model version id (default: the champion of --target)")
        parser.add_argument("--target", default="purchase_intent", help="a target name (see `manage.py targets`)")
        parser.add_argument("--from", dest="start", type=iso_time, required=True, help="first cutoff (ISO time)")
        parser.add_argument("--to", dest="end", type=iso_time, required=True, help="last cutoff (ISO time)")

    def handle(self, *, model, target, start, end, **options):
        versions = ModelVersion.objects.filter(pk=model) if model else ModelVersion.objects.filter(
            target=target, status=ModelVersion.Status.CHAMPION)
        chosen = versions.first()
        if chosen is None:
            raise CommandError(f"no model version {model}" if model else f"no {target} champion: train first")
        try:
            results = model_version_evaluate(version=chosen, start=start, end=end)
        except EvaluationError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"{chosen.target} model version {chosen.pk} ({chosen.kind}, {chosen.status})")
        self.stdout.write("\n".join(metrics_table(results)))
