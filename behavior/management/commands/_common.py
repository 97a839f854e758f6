"""Helpers shared by the commands (modules starting with _ are not commands)."""

from datetime import UTC, datetime

from behavior.services.evaluation import CutoffMetrics


def iso_time(text: str) -> datetime:
    """An ISO 8601 time from the command line; without an offset it is UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def metrics_table(results: list[CutoffMetrics]) -> list[str]:
    """One line per cutoff: the model beside the baseline (the recency/frequency rule) on the same customers."""
    lines = [f"{'cutoff':<12}{'rows':>9}{'positives':>11}{'ROC-AUC':>9}{'baseline':>10}{'PR-AUC':>8}{'baseline':>10}"
             f"{'F1':>7}"]
    lines += [f"{r.cutoff:%Y-%m-%d}  {r.rows:>9,}{r.positives:>11,}{r.roc_auc:>9.3f}{r.baseline_roc_auc:>10.3f}"
              f"{r.pr_auc:>8.3f}{r.baseline_pr_auc:>10.3f}{r.f1:>7.3f}" for r in results]
    return lines
