
from django.core.management.base import BaseCommand, CommandError

from behavior.features import TARGETS
from behavior.management.commands._common import iso_time
from behavior.services.learning import TrainingError, TrainingOutcome, models_train


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


class Command(BaseCommand):
    help = "Train the behaviour models on the stored events, register them and promote those that beat the champion."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", type=iso_time, default=None,
                            help="ISO time: train only on events before it (default: now; UTC if no zone)")
        parser.add_argument("--target", choices=sorted(TARGETS), default=None, help="one target (default: all)")

    def handle(self, *, as_of, target, verbosity, **options):
        def progress(message: str) -> None:
            if verbosity >= 1:
                self.stdout.write(f"... {message}")

        try:
            outcomes = models_train(as_of=as_of, targets=[target] if target else None, on_progress=progress)
        except TrainingError as error:
            raise CommandError(str(error)) from error
        for outcome in outcomes:
            self.stdout.write(self._table(outcome))

    def _table(self, o: TrainingOutcome) -> str:
        low, high = o.roc_auc_interval
        verdict = "promoted to champion" if o.promoted else f"not promoted ({o.status}): champion kept"
        rows = [
            ("version", f"#{o.version_id} {o.kind}, {verdict}"),
            ("ROC-AUC", f"{_num(o.roc_auc)} [{_num(low)}, {_num(high)}] vs baseline {_num(o.baseline_roc_auc)}"),
            ("PR-AUC", f"{_num(o.pr_auc)} vs base rate {_num(o.base_rate)} (baseline {_num(o.baseline_pr_auc)})"),
            ("threshold", _num(o.threshold, 4)),
            ("precision/recall/F1", f"{_num(o.precision)} / {_num(o.recall)} / {_num(o.f1)}"),
            ("positives/rows", f"{o.positives:,} / {o.rows:,} training, {o.validation_rows:,} validation"),
            ("seconds", f"{o.seconds:.1f}"),
        ]
        if o.note:
            rows.append(("note", o.note))
        width = max(len(label) for label, _ in rows)
        lines = [f"\n{o.target}", *(f"  {label:<{width}}  {value}" for label, value in rows)]
        return "\n".join(lines)
