import sys
from pathlib import Path

from django.core.management.base import BaseCommand
from tqdm import tqdm

from behavior.management.commands._common import iso_time
from behavior.models import Customer, ModelVersion
from behavior.selectors import scores_frame, scores_top
from behavior.services.scoring import CHUNK_CUSTOMERS, score_reasons_explain, scoring_cycle_run


class Command(BaseCommand):
    help = "Score every target's population with its champion model, in this process."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", type=iso_time, help="the moment taken as now (ISO time; default: now)")
        parser.add_argument("--export", type=Path, metavar="FILE.csv",
                            help="also write customer, target, probability, model_version to a CSV file: a row for "
                                 "every customer of each scored target's population")
        parser.add_argument("--chunk", type=int, default=CHUNK_CUSTOMERS, help="customers scored at a time")
        parser.add_argument("--top", type=int, default=5, help="customers to show per target (0: none)")

    def handle(self, *, as_of, export, chunk, top, verbosity, **options):
        with tqdm(total=Customer.objects.count(), unit=" customers", file=sys.stderr, disable=verbosity < 1) as bar:
            run = scoring_cycle_run(as_of=as_of, chunk_customers=chunk, on_chunk=bar.update)
        stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in run.stage_seconds.items())
        self.stdout.write(f"Scoring run {run.pk}: {run.customers:,} customers as of {run.as_of:%Y-%m-%d %H:%M} "
                          f"in {(run.finished_at - run.started_at).total_seconds():.1f} s ({stages})")
        for target, why in run.skipped.items():
            self.stdout.write(self.style.WARNING(f"Skipped {target}: {why}"))
        versions = ModelVersion.objects.in_bulk(run.model_versions.values())
        for target, version_id in run.model_versions.items():
            version = versions[version_id]
            self.stdout.write(f"{target}: #{version.pk} {version.get_kind_display()}, "
                              f"{version.metrics.get('chosen_because', '')}")
        for target in run.model_versions:
            leaders = scores_top(target=target, limit=top)
            if leaders:
                self.stdout.write(self.style.MIGRATE_HEADING(f"Highest {target.replace('_', ' ')}"))
            for score in leaders:
                because = "; ".join(r["text"] for r in score_reasons_explain(score=score)) or "(no reason to show)"
                self.stdout.write(f"  {score.customer.external_id:<16} {score.probability:6.1%}  {because}")
        if export:
            frame = scores_frame()
            frame.to_csv(export, index=False)
            self.stdout.write(f"Wrote {len(frame):,} scores to {export}")
