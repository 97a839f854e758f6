
import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from behavior.management.commands._common import iso_time, metrics_table
from behavior.services.evaluation import EvaluationError, backtest


class Command(BaseCommand):
    help = "Replay training: at each cutoff, train on what was known then and score the customers there."

    def add_arguments(self, parser):
        parser.add_argument("--target", default="purchase_intent", help="a target name (see `manage.py targets`)")
        parser.add_argument("--from", dest="start", type=iso_time, required=True, help="first cutoff (ISO time)")
        parser.add_argument("--to", dest="end", type=iso_time, required=True, help="last cutoff (ISO time)")
        parser.add_argument("--every", type=int, default=7, help="days between cutoffs (default 7)")

    def handle(self, *, target, start, end, every, **options):
        cutoffs = list(pd.date_range(start, end, freq=pd.Timedelta(days=every)))
        try:
            results = backtest(target_name=target, cutoffs=cutoffs,
                               on_progress=lambda line: self.stderr.write("... " + line))
        except EvaluationError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"{target}: trained and scored at {len(results)} cutoffs")
        self.stdout.write("\n".join(metrics_table(results)))
