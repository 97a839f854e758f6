"""Accuracy benchmark: the behaviour models on real data, replayed as a shop would live them.

    .venv/bin/python bench/accuracy.py [--weeks N] [--boot B] [--only NAME ...]

Replays (CDNOW, Olist): the data is imported once into a template SQLite database with `import_events`; at each
weekly cutoff T a copy of it keeps only the events before T (a fresh database that knows only the past), and the
commands a shop runs there are called as written:

    targets set TARGET --horizon-days H [--population P]
    train --as-of T --target TARGET
    score --as-of T --export scores.csv

The exported scores (a row for every customer of the target's population at T) are then judged against what
those customers did in [T, T + H), pooled over the cutoffs, beside, on the same rows:

- XGBoost: the XGBoost candidate that training fitted at T, whether or not it served;
- the best transparent scorer: the transparent candidate that ranked training's validation rows best;
- the one-line rules: recency (days since the customer's last event) and, for orders in flight, days late.

ROC-AUC and PR-AUC come with 95% bootstrap intervals that draw whole customers (a customer appears at several
cutoffs); "served - best transparent" is a paired bootstrap of the ROC-AUC difference on the same draws. Each
replay also sets what training promised (the served version's validation ROC-AUC, averaged over the cutoffs where
it was validated) beside what it delivered on the pooled rows.

- CDNOW (the 1/10 sample of Fader, Hardie & Lee 2005; research and teaching use): purchase within 91 days and
  within 30 days, the population active within four horizons; and the 91-day question of the shop nine months
  after its first day (`nine_months`).
- Young shops (`young`): CDNOW's 30-day purchase and Olist's support risk in shops 2, 4 and 8 weeks old (only
  the events since a start date), pooled over start dates a quarter apart: the cold start, beside the rules.
- Olist (CC BY-NC-SA 4.0), both samples: support risk (a support contact, return, refund or a review of 2 stars
  or less within 14 days) on the customers with an order in flight. The 250-order sample is stratified on edge
  cases, so its figures say whether the small-shop path holds, not how good a model is.
- Online Shoppers Purchasing Intention (UCI 468, CC BY 4.0): sessions, 5-fold cross-validation, with and without
  PageValues (which partly leaks the label), beside the one-column rules.
- Taobao UserBehavior prefix (Tianchi research terms; 814 complete users, 9 days): purchase within 1 day.

About 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path
WORK = Path(tempfile.mkdtemp(prefix="foresight-accuracy-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'template.sqlite3'}"
os.environ["FORESIGHT_TASKS_IN_PROCESS"] = "1"
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

import xgboost as xgb  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

from behavior.core.features import (  # noqa: E402
    TargetDefinition,
    build_features,
    build_labels,
    events_for_features,
)
from behavior.core.importers import read_taobao  # noqa: E402
from behavior.core.training import (  # noqa: E402
    average_precision,
    predict,
    roc_auc,
    roc_auc_difference,
    roc_auc_interval,
    train,
)
from behavior.models import Customer, Event, ModelVersion, Target  # noqa: E402
from behavior.selectors import customers_frame, events_frame, shop_norms_at  # noqa: E402
from behavior.services.learning import candidate_predict, candidates_fit, learner_refit  # noqa: E402
from behavior.services.registry import LoadedModel  # noqa: E402
from bench._common import DATASETS, read_source  # noqa: E402

settings.MEDIA_ROOT = str(WORK / "media")


@dataclass
class Pooled:
    """One dataset and target, pooled over cutoffs: labels and each scorer's scores on the same rows."""

    dataset: str
    target: str
    y: list[np.ndarray] = field(default_factory=list)
    groups: list[np.ndarray] = field(default_factory=list)
    scores: dict[str, list[np.ndarray]] = field(default_factory=dict)
    served_by: dict[str, int] = field(default_factory=dict)
    promised: list[float] = field(default_factory=list)  # the served version's validation ROC-AUC at each cutoff
    cutoffs: int = 0
    note: str = ""

    def add(self, y: np.ndarray, groups: np.ndarray, scores: dict[str, np.ndarray]) -> None:
        self.y.append(y)
        self.groups.append(groups)
        for name, values in scores.items():
            self.scores.setdefault(name, []).append(values)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        return (np.concatenate(self.y), np.concatenate(self.groups),
                {name: np.concatenate(parts) for name, parts in self.scores.items()})


# --- replays through the commands ------------------------------------------------------------------------------------


def _use(database: Path) -> None:
    """Point Django's connection at another SQLite file (the bench's own process, between commands)."""
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = str(database)


def _command(*args) -> str:
    out = StringIO()
    call_command(*map(str, args), stdout=out, stderr=StringIO())
    return out.getvalue()


def template(name: str, *import_args) -> Path:
    """A migrated SQLite database with the data imported by `import_events` as a shop would."""
    path = WORK / f"{name}.sqlite3"
    _use(path)
    _command("migrate", "--verbosity", "0")
    _command("import_events", *import_args, "--quiet")
    connections["default"].close()
    return path


def replay(pooled: Pooled, source: Path, cutoff: pd.Timestamp, target_args: list[str], full: pd.DataFrame,
           since: pd.Timestamp | None = None) -> None:
    """One cutoff: a copy that knows only the past (since `since`: a shop that began then), the shop's commands,
    then the scores against what happened."""
    database = WORK / "cutoff.sqlite3"
    shutil.copyfile(source, database)
    _use(database)
    Event.objects.filter(occurred_at__gte=cutoff).delete()
    if since is not None:
        Event.objects.filter(occurred_at__lt=since).delete()
    name = target_args[0]
    _command("targets", "set", *target_args)
    as_of = cutoff.isoformat()
    _command("train", "--as-of", as_of, "--target", name)
    export = WORK / "scores.csv"
    _command("score", "--as-of", as_of, "--export", export, "--top", "0", "--verbosity", "0")
    pooled.cutoffs += 1
    champion = ModelVersion.objects.filter(target=name, status=ModelVersion.Status.CHAMPION).first()
    if champion is None:
        raise SystemExit(f"{pooled.dataset} {cutoff:%Y-%m-%d}: `score` served no {name}")
    kind = champion.get_kind_display() + (" unvalidated" if champion.metrics.get("unvalidated") else "")
    pooled.served_by[kind] = pooled.served_by.get(kind, 0) + 1
    if champion.metrics.get("roc_auc") is not None:
        pooled.promised.append(champion.metrics["roc_auc"])
    definition = Target.objects.get(name=name).definition()
    ids = dict(Customer.objects.values_list("external_id", "pk"))
    served = {ids[r["customer"]]: float(r["probability"]) for r in csv.DictReader(export.open())
              if r["target"] == name}
    X = build_features(events_frame(), cutoff, customers_frame(), norms=shop_norms_at(cutoff))  # as `score` did
    X = X[definition.in_population(X)]
    if set(X.index) != set(served):
        raise SystemExit(f"{pooled.dataset} {cutoff:%Y-%m-%d}: the export's customers are not the population")
    y = build_labels(full, cutoff, definition, customer_ids=X.index).to_numpy()
    candidates = {c["kind"]: c for c in champion.metrics.get("candidates", [])}
    rules = [c for c in candidates.values() if c["kind"] != "xgboost"]  # none while the champion is unvalidated
    transparent = max(rules, key=lambda c: c["roc_auc"] or 0) if rules else None
    scores = {
        "served": np.array([served[i] for i in X.index]),
        "XGBoost": _candidate_scores(candidates.get("xgboost"), X),
        "best transparent": _candidate_scores(transparent, X),
        "recency": -np.nan_to_num(X["days_since_event"].to_numpy(np.float64), nan=1e4),
    }
    if definition.population == "in_flight":
        scores["days late"] = np.nan_to_num(X["days_late"].to_numpy(np.float64), nan=-30.0)
    pooled.add(y, X.index.to_numpy(), scores)
    connections["default"].close()


def _candidate_scores(candidate: dict | None, X: pd.DataFrame) -> np.ndarray:
    if candidate is None:
        return np.full(len(X), np.nan)  # not fitted at this cutoff (too few positives for XGBoost)
    return LoadedModel(ModelVersion.objects.get(pk=candidate["version"])).predict(X)


def _full_events(database: Path) -> pd.DataFrame:
    _use(database)
    events = events_frame()
    connections["default"].close()
    return events


def mondays(last: str, weeks: int) -> list[pd.Timestamp]:
    end = pd.Timestamp(last, tz="UTC")
    return [end - pd.Timedelta(weeks=w) for w in range(weeks - 1, -1, -1)]


def cdnow(weeks: int) -> list[Pooled]:
    database, full = _cdnow_template()
    out = []
    # The newest cutoffs whose whole horizon lies in the log (it ends 1998-06-30).
    for horizon, last in ((91, "1998-03-30"), (30, "1998-05-25")):
        pooled = Pooled("cdnow 2,357 customers", f"purchase_{horizon}d")
        for cutoff in mondays(last, weeks):
            replay(pooled, database, cutoff, ["purchase_intent", "--horizon-days", horizon], full)
        out.append(pooled)
    return out


def cdnow_nine_months() -> list[Pooled]:
    """The quarterly question of a shop nine months in: CDNOW from its first day (1997-01-01), 91 days ahead, at the
    four Mondays from 250 to 271 days in (training needs 210: a warm-up and two quarters)."""
    database, full = _cdnow_template()
    pooled = Pooled("cdnow nine months in", "purchase_91d")
    for cutoff in mondays("1997-09-29", 4):
        replay(pooled, database, cutoff, ["purchase_intent", "--horizon-days", 91], full)
    return [pooled]


def young(starts: int) -> list[Pooled]:
    """Shops 2, 4 and 8 weeks old: each data set's events from a start date on only (a shop that began then, or
    installed Foresight then without its history), scored at that age, pooled over `starts` start dates a quarter
    apart: CDNOW's purchase within 30 days and Olist's support risk (4,000 orders)."""
    cdnow_db, cdnow_full = _cdnow_template()
    olist_db = template("sample_4000_orders", "--format", "olist", DATASETS / "olist" / "sample_4000_orders")
    olist_full = _full_events(olist_db)
    shops = [("cdnow", "purchase_30d", cdnow_db, cdnow_full, "1997-01-06", ["purchase_intent", "--horizon-days", 30]),
             ("olist 4,000 orders", "support_risk", olist_db, olist_full, "2017-01-02",
              ["support_risk", "--horizon-days", "14", "--population", "in_flight:14"])]
    out = []
    for weeks in (2, 4, 8):
        for label, target, database, full, first, args in shops:
            pooled = Pooled(f"{label}, a shop {weeks} weeks old", target)
            for k in range(starts):
                since = pd.Timestamp(first, tz="UTC") + pd.Timedelta(weeks=13 * k)
                replay(pooled, database, since + pd.Timedelta(weeks=weeks), args, full, since=since)
            pooled.note = f"{starts} shops, started a quarter apart from {first}"
            out.append(pooled)
    return out


def _cdnow_template() -> tuple[Path, pd.DataFrame]:
    path = WORK / "cdnow.sqlite3"
    if not path.exists():
        raw = pd.read_csv(DATASETS / "cdnow_sample" / "CDNOW_sample.txt", sep=r"\s+", header=None,
                          names=["full_id", "customer", "date", "cds", "dollars"])
        converted = WORK / "cdnow.csv"
        raw[["customer", "date", "cds", "dollars"]].to_csv(converted, index=False)
        template("cdnow", "--format", "mapped", converted, "--customer", "customer", "--time", "date",
                 "--time-format", "%Y%m%d", "--fixed-type", "purchase", "--price", "dollars")
    return path, _full_events(path)


def olist(weeks: int) -> list[Pooled]:
    out = []
    for folder, label in (("sample_4000_orders", "olist 4,000 orders"),
                          ("stratified_250_orders", "olist 250 (edge cases)")):
        database = template(folder, "--format", "olist", DATASETS / "olist" / folder)
        full = _full_events(database)
        pooled = Pooled(label, "support_risk, in flight")
        for cutoff in mondays("2018-07-30", weeks):
            replay(pooled, database, cutoff,
                   ["support_risk", "--horizon-days", "14", "--population", "in_flight:14"], full)
        out.append(pooled)
    return out


# --- the data sets without a shop to replay --------------------------------------------------------------------------


def online_shoppers(folds: int = 5, seed: int = 0) -> list[Pooled]:
    """Stratified 5-fold, seeded; within each fold a fifth of the training part (stratified) stops the boosting.

    Out-of-fold predictions of all 12,330 sessions are pooled. The rules: with PageValues, the flag PageValues > 0;
    without it, ProductRelated_Duration.
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
        scores = np.empty(len(y))
        for k in range(folds):
            test, stop = fold == k, (fold != k) & (inner == 0)
            fit = (fold != k) & ~stop
            model = train(X.loc[fit, columns], y[fit], X.loc[stop, columns], y[stop], params={"seed": seed},
                          stop_on_valid=True)
            scores[test] = predict(model.booster, X.loc[test, columns])
        pooled = Pooled(f"online shoppers {'with' if with_pages else 'w/o'} PageValues", "Revenue (session)")
        rule = (X["PageValues"] > 0) if with_pages else X["ProductRelated_Duration"]
        name = "PageValues > 0" if with_pages else "ProductRelated_Duration"
        pooled.add(y, np.arange(len(y)), {"served": scores, "XGBoost": scores, name: rule.to_numpy(np.float64)})
        pooled.note = "5-fold cross-validation of XGBoost; no transparent scorer applies to sessions"
        out.append(pooled)
    return out


def taobao() -> list[Pooled]:
    """Daily cutoffs at Beijing midnight; fit on 11-26..11-30, early stopping on 12-01, judged on 12-03.

    Rows are every customer active before the cutoff. The transparent scorers are fitted on the fit days.
    """
    raw = read_source(read_taobao(DATASETS / "taobao_userbehavior_prefix" / "UserBehavior_prefix.csv"))
    raw = raw[raw["customer"] != "100370"]  # the prefix cuts the last user off
    events = events_for_features(raw)
    days = [pd.Timestamp(f"2017-{d}", tz="Asia/Shanghai").tz_convert("UTC")
            for d in ("11-26", "11-27", "11-28", "11-29", "11-30", "12-01", "12-03")]
    target = TargetDefinition("purchase_1d", pd.Timedelta(days=1), ("purchase",))

    def rows(cutoffs):
        xs, ys = [], []
        for c in cutoffs:
            x = build_features(events, c)
            x = x[target.in_population(x)]
            xs.append(x)
            ys.append(build_labels(events, c, target, customer_ids=x.index).to_numpy())
        return pd.concat(xs), np.concatenate(ys)

    (X_fit, y_fit), (X_valid, y_valid), (X_test, y_test) = rows(days[:5]), rows(days[5:6]), rows(days[6:])
    stack = {"cutoff": np.zeros(len(X_fit)), "customer_id": X_fit.index}
    X_fit = X_fit.set_axis(pd.MultiIndex.from_arrays(list(stack.values()), names=list(stack)))
    X_valid = X_valid.set_axis(pd.MultiIndex.from_arrays([np.zeros(len(X_valid)), X_valid.index],
                                                         names=["cutoff", "customer_id"]))
    # Training's own recipe: every candidate fitted on the fit days, the choice made on the validation day.
    chosen, candidates, because = candidates_fit(target, X_fit, y_fit, X_valid, y_valid)
    served = learner_refit(chosen, target, pd.concat([X_fit, X_valid]), np.r_[y_fit, y_valid], X_valid, y_valid)
    by_kind = {c.kind: c for c in candidates}
    transparent = max((c for c in candidates if c.booster is None), key=lambda c: c.metrics.roc_auc)
    xgboost = by_kind.get("xgboost")
    pooled = Pooled("taobao 814 users", "purchase_1d")
    pooled.served_by[chosen.label] = 1
    pooled.add(y_test, X_test.index.to_numpy(), {
        "served": candidate_predict(served, target, X_test),
        "XGBoost": candidate_predict(xgboost, target, X_test) if xgboost else np.full(len(X_test), np.nan),
        "best transparent": candidate_predict(transparent, target, X_test),
        "recency": -np.nan_to_num(X_test["days_since_event"].to_numpy(np.float64), nan=1e4)})
    pooled.note = (f"fit on 5 days, chosen on 12-01 and fitted again on all 6, judged on 12-03 after a gap day; "
                   f"{because}")
    return [pooled]


# --- the table -------------------------------------------------------------------------------------------------------


def pr_auc_interval(y: np.ndarray, p: np.ndarray, groups: np.ndarray, n_boot: int, seed: int = 0
                    ) -> tuple[float, float]:
    """PR-AUC's 95% interval from draws of whole groups (customers)."""
    codes = pd.factorize(groups)[0]
    members = pd.Series(np.arange(len(y))).groupby(codes).apply(np.array).to_numpy()
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        rows = np.concatenate(members[rng.integers(0, len(members), len(members))])
        if y[rows].any():
            values.append(average_precision(y[rows], p[rows]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def report(pooled: Pooled, n_boot: int) -> list[str]:
    y, groups, scores = pooled.arrays()
    y = y.astype(bool)
    lines = [f"\n{pooled.dataset} / {pooled.target}: {len(y):,} rows ({int(y.sum()):,} positive, "
             f"{y.mean():.1%}) of {len(np.unique(groups)):,} customers"
             + (f" over {pooled.cutoffs} weekly cutoffs" if pooled.cutoffs else "")]
    if pooled.served_by:
        lines.append("  served: " + ", ".join(f"{k} at {v} cutoffs" for k, v in pooled.served_by.items()))
    if pooled.promised:
        delivered = roc_auc(y, scores["served"])
        lines.append(f"  promised (validation ROC-AUC, mean of {len(pooled.promised)} validated cutoffs) "
                     f"{np.mean(pooled.promised):.3f}, delivered (pooled) {delivered:.3f}: gap "
                     f"{delivered - np.mean(pooled.promised):+.3f}")
    lines.append(f"  {'scorer':<26}{'ROC-AUC [95%]':>24}{'PR-AUC [95%]':>24}   rows")
    for name, p in scores.items():
        known = ~np.isnan(p)
        if not known.any():
            lines.append(f"  {name:<26}{'not fitted at any cutoff':>24}")
            continue
        yk, pk, gk = y[known], p[known], groups[known]
        low, high = roc_auc_interval(yk, pk, groups=gk, n_boot=n_boot)
        plow, phigh = pr_auc_interval(yk, pk, gk, n_boot=min(n_boot, 300))
        share = "" if known.all() else f" ({known.sum():,}: where it was fitted)"
        lines.append(f"  {name:<26}{roc_auc(yk, pk):>7.3f} [{low:.3f}, {high:.3f}]"
                     f"{average_precision(yk, pk):>8.3f} [{plow:.3f}, {phigh:.3f}]   {known.sum():,}{share}")
    one_line = [n for n in scores if n not in ("served", "XGBoost", "best transparent")]
    best_rule = max(one_line, key=lambda n: roc_auc(y, scores[n]))
    pairs = [("served", best_rule)]
    if "best transparent" in scores:
        pairs.insert(0, ("XGBoost", "best transparent"))
    for first, second in pairs:
        both = ~np.isnan(scores[first]) & ~np.isnan(scores[second])
        if not both.any():
            continue
        gain, low, high = roc_auc_difference(y[both], scores[first][both], scores[second][both],
                                             groups=groups[both], n_boot=n_boot)
        verdict = ("beyond noise" if low > 0 else "WORSE, beyond noise" if high < 0 else "within noise")
        lines.append(f"  ROC-AUC {first} - {second}: {gain:+.3f} [{low:+.3f}, {high:+.3f}], {verdict}")
    if pooled.note:
        lines.append(f"  ({pooled.note})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=12, help="weekly cutoffs per replay (Olist: 17)")
    parser.add_argument("--boot", type=int, default=1_000, help="bootstrap samples per interval")
    parser.add_argument("--starts", type=int, default=4, help="young shops pooled per age")
    parser.add_argument("--only", nargs="*", choices=["cdnow", "nine_months", "young", "olist", "shoppers", "taobao"])
    args = parser.parse_args()
    print(f"xgboost {xgb.__version__}, pandas {pd.__version__}, {os.cpu_count()} cores; "
          f"datasets in {DATASETS.relative_to(ROOT.parent)}; work in {WORK}")
    runs = {"cdnow": lambda: cdnow(args.weeks), "nine_months": cdnow_nine_months,
            "young": lambda: young(args.starts), "olist": lambda: olist(max(args.weeks, 17)),
            "shoppers": online_shoppers, "taobao": taobao}
    try:
        for name in args.only or runs:
            started = time.perf_counter()
            results = runs[name]()
            print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
            for pooled in results:
                print("\n".join(report(pooled, args.boot)), flush=True)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    started = datetime.now(UTC)
    main()
    print(f"\nfinished in {(datetime.now(UTC) - started) / timedelta(minutes=1):.1f} minutes")
