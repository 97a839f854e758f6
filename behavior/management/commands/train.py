from django.core.management.base import BaseCommand, CommandError

from behavior.management.commands._common import iso_time
from behavior.services.learning import TrainingError, TrainingOutcome, models_train


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _auc(metrics: dict) -> str:
    low, high = metrics.get("roc_auc_interval") or (None, None)
    interval = f" [{_num(low)}, {_num(high)}]" if low is not None and high is not None else ""
    return f"{_num(metrics.get('roc_auc'))}{interval}"


class Command(BaseCommand):
    help = ("Train every target's candidates (XGBoost and transparent scorers) on the stored events, register "
            "the best on the target's population and promote it if it beats the champion.")

    def add_arguments(self, parser):
        parser.add_argument("--as-of", type=iso_time, default=None,
                            help="ISO time: train only on events before it (default: now; UTC if no zone)")
        parser.add_argument("--target", default=None, help="one target (default: all; see `manage.py targets`)")

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
        m, everyone = o.metrics, o.all_customers
        verdict = "promoted to champion" if o.promoted else f"not promoted ({o.status}): champion kept"
        if o.unvalidated:
            return self._rows(o.target, [("version", f"#{o.version_id} {o.kind}, {verdict}"),
                                         ("why", o.chosen_because), ("population", o.population),
                                         ("seconds", f"{o.seconds:.1f}"), *([("note", o.note)] if o.note else [])])
        rows = [
            ("version", f"#{o.version_id} {o.kind}, {verdict}"),
            ("why", o.chosen_because),
            ("judged on", f"{o.population}: {o.validation_rows:,} rows ({o.validation_positives:,} positive) at "
                          f"{o.validation_cutoffs} validation cutoffs"),
            ("served", f"fitted again on all {o.fitted_rows:,} rows at {o.fitted_cutoffs} cutoffs, validation ones "
                       "included; the figures here are the choice's (fitted on the training cutoffs, judged on the "
                       "validation ones)"),
            ("ROC-AUC [95%]", _auc(m)),
            ("PR-AUC", f"{_num(m.get('pr_auc'))} vs base rate {_num(m.get('base_rate'))}"),
            ("top 10%", f"precision {_num(m.get('top_precision'), '{:.1%}')}, "
                        f"lift {_num(m.get('top_lift'), '{:.2f}x')}"),
            ("threshold", f"{_num(m.get('threshold'), '{:.4f}')} (precision/recall/F1 "
                          f"{_num(m.get('precision'))} / {_num(m.get('recall'))} / {_num(m.get('f1'))})"),
        ]
        for c in o.candidates:
            rows.append((f"  {c['label']}", f"ROC-AUC {_auc(c)}, PR-AUC {_num(c['pr_auc'])}, "
                                            f"top-10% lift {_num(c['top_lift'], '{:.2f}x')}"))
        if everyone:
            rows.append(("all customers", f"ROC-AUC {_num(everyone.get('roc_auc'))}, PR-AUC "
                                          f"{_num(everyone.get('pr_auc'))} vs base rate "
                                          f"{_num(everyone.get('base_rate'))} on {everyone.get('n', 0):,} active "
                                          "customers at the last validation cutoff (for scale only)"))
        rows += [("training", f"{o.positives:,} positive of {o.rows:,} rows"), ("seconds", f"{o.seconds:.1f}")]
        if o.note:
            rows.append(("note", o.note))
        return self._rows(o.target, rows)

    @staticmethod
    def _rows(title: str, rows: list[tuple[str, str]]) -> str:
        width = max(len(label) for label, _ in rows)
        return "\n".join([f"\n{title}", *(f"  {label:<{width}}  {value}" for label, value in rows)])
