"""Accuracy benchmark: the behaviour models on real and simulated data, each beside a simple baseline.

    .venv/bin/python bench/accuracy.py [--customers N] [--days D] [--boot B]

One line per dataset and target: rows and positives of the held-out set, the model's ROC-AUC with a 95% bootstrap
interval beside the baseline's (measured in the same run on the same rows), and PR-AUC (average precision) of both
beside the base rate, which is what PR-AUC is for a random ranking. A verdict says whether the model beats the
baseline beyond the overlap of the two intervals (a conservative test: overlapping intervals can still hide a
real difference).

- Olist (sample_4000_orders, CC BY-NC-SA 4.0): support_risk from the importer's purchase, delivery and review
  events (reviews timed when answered, so features at a cutoff see only reviews written by then).
- Taobao UserBehavior prefix (Tianchi research terms; 814 complete users, 9 days): purchase within 1 day.
- Online Shoppers Purchasing Intention (UCI 468, CC BY 4.0): one row per session, 5-fold cross-validation,
  with and without PageValues, which partly leaks the label.
- A simulated shop (behavior.simulation): both targets with the project's own cutoffs.

Every model is `behavior.training.train` with its default parameters; early stopping uses its own held-out part
(never the rows the metrics are computed on). Pure pandas/XGBoost, no database; about 1 minute on 2 cores.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"  # beside the checkout

from behavior.features import (  # noqa: E402  (plain modules)
    TARGETS,
    Target,
    build_features,
    build_labels,
    events_for_features,
)
from behavior.importers import read_olist, read_taobao  # noqa: E402
from behavior.simulation import simulate_block, simulate_catalogue  # noqa: E402
from behavior.training import average_precision, baseline_scores, predict, roc_auc, roc_auc_interval, train  # noqa: E402

DAY = pd.Timedelta(days=1)
SIM_END = datetime(2026, 1, 1, tzinfo=UTC)
PURCHASE_1D = Target("purchase_1d", DAY, ("purchase",), description="buys within 1 day")
@dataclass
class Row:
    dataset: str
    target: str
    y: np.ndarray
    model: np.ndarray  # model scores on the held-out rows
    baseline: np.ndarray  # baseline scores on the same rows
    note: str = ""


# --- events in memory from the importers' readers ------------------------------------------------------------------


def read_source(source) -> pd.DataFrame:
    """All chunks of a Source, without the rows the reader found bad or left out (as services.imports does)."""
    frames = []
    for chunk in source.chunks:
        left_out = chunk.events.index.intersection(pd.Index([p.row for p in chunk.problems]).union(
            pd.Index([row for rows in chunk.skipped.values() for row in rows])))
        frames.append(chunk.events.drop(index=left_out))
    events = pd.concat(frames)
    return events[events["customer"].notna() & events["occurred_at"].notna()]


# --- cutoffs, frames and one model -----------------------------------------------------------------------------------


class Frames:
    """Features per cutoff, computed once and shared by the targets."""

    def __init__(self, events: pd.DataFrame, customers: pd.DataFrame | None = None):
        self.events, self.customers, self.cache = events, customers, {}

    def features(self, cutoff: pd.Timestamp) -> pd.DataFrame:
        if cutoff not in self.cache:
            x = build_features(self.events, cutoff, self.customers)
            self.cache[cutoff] = x[x["days_since_event"].notna()]  # active before the cutoff, as training_frame
        return self.cache[cutoff]

    def stack(self, cutoffs: list[pd.Timestamp], target: Target) -> tuple[pd.DataFrame, np.ndarray]:
        xs, ys = [], []
        for cutoff in cutoffs:
            x = self.features(cutoff)
            xs.append(x)
            ys.append(build_labels(self.events, cutoff, target, customer_ids=x.index).to_numpy())
        return pd.concat(xs), np.concatenate(ys)


def time_split(cutoffs: list[pd.Timestamp], test_from: pd.Timestamp, horizon: pd.Timedelta, early_stop: int):
    """Fit, early-stopping and test cutoffs; a gap of one horizon before the test and before early stopping.

    A cutoff's label window is [cutoff, cutoff + horizon): cutoffs up to `test_from - 2 * horizon` end their labels
    one horizon before the first test cutoff, so the same customers' events do not sit on both sides of the split.
    The newest `early_stop` of them stop the boosting; fit cutoffs keep the same gap before those.
    """
    test = [c for c in cutoffs if c >= test_from]
    before = [c for c in cutoffs if c <= test_from - 2 * horizon]
    stop = before[-early_stop:]
    fit = [c for c in before if c <= stop[0] - 2 * horizon]
    return fit, stop, test


def fit_and_score(frames: Frames, target: Target, baseline_target: str, fit, stop, test) -> tuple:
    X_fit, y_fit = frames.stack(fit, target)
    X_stop, y_stop = frames.stack(stop, target)
    X_test, y_test = frames.stack(test, target)
    model = train(X_fit, y_fit, X_stop, y_stop)
    note = f"{int(y_fit.sum())} fit / {int(y_stop.sum())} stop positives, {model.best_iteration + 1} trees"
    return y_test, predict(model.booster, X_test), baseline_scores(X_test, baseline_target), note, X_test


# --- the datasets ----------------------------------------------------------------------------------------------------


def olist() -> list[Row]:
    """Cutoffs every 14 days (one horizon, so label windows tile) from 2017-01-15 to the as-of minus a horizon.

    choose_cutoffs' defaults do not fit: its validation cutoff is the as-of (the last event, a review answered in
    2018-10) minus 14 days, when the sample holds almost no orders (they stop in 2018-08), and 8 training cutoffs
    14 days apart cover four months of a two-year history. Instead the test block is every cutoff from 2018-05-15
    on (about 10, to pool enough positives), after a gap of one horizon; the 6 training cutoffs before that gap
    stop the boosting, and the older ones (from 2017-01-15, after the sparse 2016 start) are fitted.
    """
    events = events_for_features(read_source(read_olist(DATASETS / "olist" / "sample_4000_orders")))
    target = TARGETS["support_risk"]
    as_of = events["occurred_at"].max()
    cutoffs = list(pd.date_range(pd.Timestamp("2017-01-15", tz="UTC"), as_of - target.horizon, freq="14D"))
    fit, stop, test = time_split(cutoffs, pd.Timestamp("2018-05-15", tz="UTC"), target.horizon, early_stop=6)
    y, model, base, note, X = fit_and_score(Frames(events), target, "support_risk", fit, stop, test)
    # Most rows are customers whose one order is long past: they never review again, and the recency of the last
    # order alone sorts them out. The second line ranks only customers with an order in the 30 days before the
    # cutoff (same model, same test rows, fewer of them), where telling who will complain is the real question.
    recent = (X["purchase_30d"] > 0).to_numpy()
    # Olist asks for one review per order, so a customer whose last order is not reviewed yet is the only kind who
    # can review badly soon: that flag alone, for scale (not the baseline; it is what the model mostly learns).
    pending = (X["days_since_review"].isna() | (X["days_since_review"] > X["days_since_purchase"])).to_numpy(float)
    split = f"{len(fit)} fit / {len(stop)} stop / {len(test)} test cutoffs, 14 days apart; {note}"
    return [Row("olist 4000 orders", "support_risk", y, model, base, f"all customers active before; {split}"),
            Row("olist, ordered in last 30 d", "support_risk", y[recent], model[recent], base[recent],
                "only customers with a purchase in the 30 days before the cutoff; the flag 'last order not "
                f"reviewed yet' alone: ROC-AUC {roc_auc(y[recent], pending[recent]):.3f}")]


def taobao() -> list[Row]:
    """Daily cutoffs at Beijing midnight; test on the last day (12-03) after a gap day (12-02).

    The 7-day purchase_intent horizon does not fit 9 days, so the target is a purchase within 1 day; its baseline
    is purchase_intent's browsing heuristic. Fit cutoffs 11-26..11-30 (11-25 is the first day: no history before
    it), early stopping on 12-01. Rows outside the official window are dropped by the reader; the last user of the
    prefix (100370) is cut off mid-history and dropped here.
    """
    raw = read_source(read_taobao(DATASETS / "taobao_userbehavior_prefix" / "UserBehavior_prefix.csv"))
    events = events_for_features(raw[raw["customer"] != "100370"])
    day = [pd.Timestamp(f"2017-{d}", tz="Asia/Shanghai").tz_convert("UTC")
           for d in ("11-26", "11-27", "11-28", "11-29", "11-30", "12-01", "12-03")]
    y, model, base, note, _ = fit_and_score(Frames(events), PURCHASE_1D, "purchase_intent", day[:5], day[5:6], day[6:])
    return [Row("taobao 814 users", "purchase_1d", y, model, base, f"5 fit / 1 stop / 1 test day; {note}")]


def online_shoppers(folds: int = 5, seed: int = 0) -> list[Row]:
    """Stratified 5-fold, seeded; within each fold 20% of the training part (stratified) stops the boosting.

    Out-of-fold predictions of all 12,330 sessions are pooled for the AUCs and their interval.
    Baselines: with PageValues, the flag PageValues > 0; without it, ranking by ProductRelated_Duration.
    """
    data = pd.read_csv(DATASETS / "online_shoppers_intention" / "online_shoppers_intention.csv")
    y = data.pop("Revenue").astype(bool).to_numpy()
    months = ["Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    data["Month"] = pd.Categorical(data["Month"], categories=months).codes
    data["VisitorType"] = pd.Categorical(data["VisitorType"],
                                         categories=["New_Visitor", "Returning_Visitor", "Other"]).codes
    data["Weekend"] = data["Weekend"].astype(bool).astype(int)
    X = data.astype(np.float32)
    rng = np.random.default_rng(seed)
    fold, inner = np.empty(len(y), int), np.empty(len(y), int)
    for label in (False, True):  # stratified: each class spread evenly over the folds
        rows = rng.permutation(np.flatnonzero(y == label))
        fold[rows] = np.arange(len(rows)) % folds
        inner[rows] = rng.permutation(len(rows)) % 5  # part 0 of a fold's training rows stops the boosting
    out = []
    for with_pages in (True, False):
        columns = [c for c in X.columns if with_pages or c != "PageValues"]
        scores, trees, fold_aucs = np.empty(len(y)), [], []
        for k in range(folds):
            test, stop = fold == k, (fold != k) & (inner == 0)
            fit = (fold != k) & ~stop
            model = train(X.loc[fit, columns], y[fit], X.loc[stop, columns], y[stop], params={"seed": seed})
            scores[test] = predict(model.booster, X.loc[test, columns])
            trees.append(model.best_iteration + 1)
            fold_aucs.append(roc_auc(y[test], scores[test]))
        if with_pages:
            base, name, base_name = (X["PageValues"] > 0).to_numpy(float), "with PageValues", "PageValues > 0"
        else:
            base, name, base_name = X["ProductRelated_Duration"].to_numpy(float), "w/o PageValues", \
                "ProductRelated_Duration"
        out.append(Row(f"online shoppers {name}", "Revenue", y, scores, base,
                       f"baseline {base_name}; fold ROC-AUC {np.mean(fold_aucs):.3f} +- {np.std(fold_aucs):.3f}, "
                       f"{min(trees)}-{max(trees)} trees"))
    return out


def simulated(customers: int, days: int) -> list[Row]:
    """choose_cutoffs' defaults (8 training cutoffs one horizon apart, a gap, validation at the as-of minus a horizon).

    The newest training cutoff stops the boosting and the 7 older ones are fitted (adjacent cutoffs one horizon
    apart have no overlapping label windows); metrics on the validation cutoff.
    """
    from behavior.training import choose_cutoffs

    shop = simulate_block(seed=7, block=0, first_customer=0, customers=customers, days=days, end=SIM_END,
                          catalogue=simulate_catalogue(seed=7, products=1_000))
    e = shop.events
    external_ids = pd.factorize(e["customer"])[1]
    events = events_for_features(e)
    people = pd.DataFrame({"customer_id": external_ids.get_indexer(shop.customers["external_id"]),
                           "attributes": shop.customers["attributes"]}).query("customer_id >= 0")
    frames = Frames(events, people)
    out = []
    for name, target in TARGETS.items():
        training, validation = choose_cutoffs(events["occurred_at"].min(), SIM_END, target)
        y, model, base, note, _ = fit_and_score(frames, target, name, training[:-1], training[-1:], [validation])
        out.append(Row(f"simulated {customers // 1000}k/{days}d", name, y, model, base,
                       f"{len(training) - 1} fit / 1 stop / 1 test cutoff; {note}"))
    return out


# --- the table -------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=30_000, help="simulated customers")
    parser.add_argument("--days", type=int, default=150, help="simulated days")
    parser.add_argument("--boot", type=int, default=1_000, help="bootstrap samples per interval")
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, xgboost {xgb.__version__}, pandas {pd.__version__}; "
          f"datasets in {DATASETS.relative_to(ROOT.parent)}")
    rows: list[Row] = []
    for label, run in (("olist", olist), ("taobao", taobao), ("online shoppers", online_shoppers),
                       ("simulated", lambda: simulated(args.customers, args.days))):
        started = time.perf_counter()
        rows += run()
        print(f"  {label}: {time.perf_counter() - started:.1f} s")

    header = (f"\n{'dataset':30} {'target':15} {'rows':>7} {'positives':>14}  {'model ROC-AUC [95%]':>22}  "
              f"{'baseline ROC-AUC [95%]':>22}  {'PR-AUC model':>12} {'baseline':>8} {'rate':>6}")
    print(header)
    print("-" * (len(header) - 1))
    verdicts = []
    for row in rows:
        auc_m, auc_b = roc_auc(row.y, row.model), roc_auc(row.y, row.baseline)
        low_m, high_m = roc_auc_interval(row.y, row.model, n_boot=args.boot)
        low_b, high_b = roc_auc_interval(row.y, row.baseline, n_boot=args.boot)
        positives, rate = int(row.y.sum()), float(row.y.mean())
        print(f"{row.dataset:30} {row.target:15} {len(row.y):7,} {positives:6,} ({rate:5.1%})  "
              f"{auc_m:.3f} [{low_m:.3f}, {high_m:.3f}]  {auc_b:.3f} [{low_b:.3f}, {high_b:.3f}]  "
              f"{average_precision(row.y, row.model):12.3f} {average_precision(row.y, row.baseline):8.3f} "
              f"{rate:6.3f}")
        if low_m > high_b:
            verdict = "model beats the baseline beyond the interval overlap"
        elif high_m < low_b:
            verdict = "model is WORSE than the baseline beyond the interval overlap"
        else:
            verdict = f"intervals overlap: no clear difference (model {auc_m - auc_b:+.3f})"
        verdicts.append(f"{row.dataset} / {row.target}: {verdict}. ({row.note})")
    print()
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
