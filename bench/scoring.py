"""Scoring benchmark: training, one full scoring cycle by stage, the raw limit of each stage, a naive ORM loop.

    .venv/bin/python bench/scoring.py [--customers N] [--database-url URL] [--naive K]

The bench database is a clone of the simulated shop (`--template`, default foresight_sim) when the
requested size is the template's, else a fresh `simulate_shop` of that size. Every raw limit and the
naive loop run in the same process on the same data, so the ratios hold on any machine. See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path

from bench._common import machine_facts, number, redacted  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/foresight_bench_scoring"
DEFAULT_TEMPLATE = "foresight_sim"
DEFAULT_AS_OF = "2026-11-01T00:00:00Z"  # the end of the template's simulation
SMALL_SHOP = 50_000  # customers simulated when there is no template
SCRATCH_TABLE = "bench_score_scratch"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Goals: (label, figure name, threshold, "<=" or ">=").
GOALS = (
    ("training seconds (both targets)", "training_seconds", 120.0, "<="),
    ("cycle / sum of raw limits", "cycle_over_raw", 2.0, "<="),
    ("cycle speed-up over naive ORM", "speedup_over_naive", 50.0, ">="),
)


@dataclass
class Stage:
    name: str
    cycle: float | None = None  # seconds in the scoring cycle (ScoringRun.stage_seconds)
    raw: float | None = None  # seconds of the raw limit measured here
    raw_label: str = ""


@dataclass
class Run:
    customers: int
    events: int
    as_of: str
    database: str
    source: str
    chunk_customers: int
    machine: dict = field(default_factory=dict)
    training_seconds: float | None = None
    training: list[dict] = field(default_factory=list)
    training_peak_rss_mib: float | None = None
    cycle_seconds: float | None = None
    cycle_customers: int = 0
    cycle_peak_rss_mib: float | None = None
    cycle_stage_seconds: dict = field(default_factory=dict)
    first_cycle_seconds: float | None = None  # the day's first cycle, which also keeps a copy of its scores
    first_cycle_stage_seconds: dict = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    diagnostics: dict = field(default_factory=dict)  # seconds of the cycle's own selectors on all customers
    naive_customers: int = 0
    naive_seconds: float | None = None
    naive_extrapolated_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def raw_sum(self) -> float:
        return sum(s.raw for s in self.stages if s.raw is not None)

    def figure(self, name: str) -> float | None:
        if name == "training_seconds":
            return self.training_seconds
        if name == "cycle_over_raw":
            return self.cycle_seconds / self.raw_sum if self.cycle_seconds and self.raw_sum else None
        if name == "speedup_over_naive":
            return (self.naive_extrapolated_seconds / self.cycle_seconds
                    if self.cycle_seconds and self.naive_extrapolated_seconds else None)
        raise KeyError(name)


# ---------------------------------------------------------------- the database


def _check_url(url: str) -> tuple[str, str]:
    info = conninfo_to_dict(url)
    host, name = info.get("host", ""), info.get("dbname", "")
    if host and not host.startswith("/") and host not in LOOPBACK:
        raise SystemExit(f"refusing to run against {host}: the bench talks to this machine only")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop database {name!r}: its name must contain 'bench'")
    return host, name


def template_customers(url: str, template: str) -> int | None:
    """Customers in the template database, or None when it does not exist or has no customers table."""
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone():
            return None
    try:
        with psycopg.connect(make_conninfo(url, dbname=template), autocommit=True) as connection:
            row = connection.execute("SELECT count(*) FROM behavior_customer").fetchone()
            return int(row[0])
    except psycopg.Error:
        return None


def database_recreate(url: str, template: str | None) -> dict:
    """Drop and create the bench database (a copy of `template` when given); return the server's facts."""
    _, name = _check_url(url)
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template:
            users = connection.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                       [template]).fetchone()[0]
            if users:
                raise SystemExit(f"{users} session(s) connected to {template}: PostgreSQL cannot copy it now;"
                                 " retry later or pass --customers N to simulate a shop instead")
            connection.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                              sql.Identifier(template)))
        else:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return {
            setting: connection.execute(f"SHOW {setting}").fetchone()[0]
            for setting in ("server_version", "shared_buffers", "work_mem", "synchronous_commit")
        }


def django_setup(url: str) -> None:
    # local.py turns DEBUG on by default; DEBUG keeps every query in memory and is not how anyone runs.
    os.environ.update({"DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": url, "DJANGO_DEBUG": "0"})
    import django

    django.setup()


# ---------------------------------------------------------------- measuring


def peak_rss_reset() -> bool:
    """Reset this process's peak RSS (Linux: VmHWM), so the next peak is of what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # lifetime peak, KiB on Linux


@contextmanager
def timed(into: dict, name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    into[name] = time.perf_counter() - started
    print(f"  {name}: {into[name]:.2f} s", file=sys.stderr)


def _copy_frame(cursor, query: str, convert: pa_csv.ConvertOptions) -> pd.DataFrame:
    buffer = io.BytesIO()
    with cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    table = pa_csv.read_csv(buffer, convert_options=convert)
    return table.to_pandas(types_mapper=lambda t: pd.Int64Dtype() if pa.types.is_integer(t) else None)


def raw_events_copy(as_of: datetime) -> pd.DataFrame:
    """The events the cycle reads, in one COPY TO STDOUT into pyarrow: the read's limit on this schema."""
    from django.db import connection

    from behavior.selectors import EVENT_COLUMNS, PROPERTY_COLUMNS, event_columns_sql

    columns = event_columns_sql("postgresql")
    with connection.cursor() as cursor:
        query = cursor.cursor.mogrify(f"SELECT {', '.join(columns)} FROM behavior_event"
                                      " WHERE customer_id IS NOT NULL AND occurred_at < %s", [as_of])
        options = pa_csv.ConvertOptions(column_types={**EVENT_COLUMNS, **PROPERTY_COLUMNS}, strings_can_be_null=True)
        return _copy_frame(cursor.cursor, query, options)


def raw_customers_copy() -> pd.DataFrame:
    """Customers as the features need them (id, created_at, attributes as dicts) through COPY and one JSON pass."""
    from django.db import connection

    types = {"customer_id": pa.int64(), "created_at": pa.timestamp("us", tz="UTC"), "attributes": pa.string()}
    with connection.cursor() as cursor:
        frame = _copy_frame(cursor.cursor, "SELECT id AS customer_id, created_at, attributes::text AS attributes"
                            " FROM behavior_customer ORDER BY id", pa_csv.ConvertOptions(column_types=types))
    frame["attributes"] = [orjson.loads(a) if a else {} for a in frame["attributes"]]
    return frame


def raw_scores_write(scored: dict[str, tuple[np.ndarray, np.ndarray]], version_ids: dict[str, int],
                     scored_at: datetime) -> None:
    """A row per customer of each target's population into a scratch copy of behavior_score (same columns and
    unique index) by COPY; `scored` is target -> (customer ids, probabilities)."""
    from django.db import connection

    parts = []
    for target, (ids, p) in scored.items():
        parts.append(pa.table({
            "customer_id": pa.array(ids, pa.int64()),
            "target": pa.array(np.full(len(ids), target, dtype=object), pa.string()),
            "probability": pa.array(p, pa.float64()),
            "model_version_id": pa.array(np.full(len(ids), version_ids[target]), pa.int64()),
            "scored_at": pa.array(np.full(len(ids), np.datetime64(scored_at.replace(tzinfo=None), "us")),
                                  pa.timestamp("us", tz="UTC")),
            "reasons": pa.array(np.full(len(ids), "[]", dtype=object), pa.string()),
        }))
    buffer = io.BytesIO()
    pa_csv.write_csv(pa.concat_tables(parts), buffer, pa_csv.WriteOptions(include_header=False))
    with connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY {SCRATCH_TABLE} (customer_id, target, probability, model_version_id, scored_at, reasons)"
        " FROM STDIN WITH (FORMAT csv)"
    ) as copy:
        copy.write(buffer.getbuffer())


def features_in_chunks(events: pd.DataFrame, customers: pd.DataFrame, as_of: datetime, ids: np.ndarray,
                       chunk: int) -> None:
    """build_features per id range as the cycle calls it, the frames sliced in memory (slicing included)."""
    from behavior.core.features import build_features

    event_ids = events["customer_id"].to_numpy(np.int64, na_value=-1)
    customer_ids = customers["customer_id"].to_numpy(np.int64)
    for start in range(0, len(ids), chunk):
        first, last = ids[start], ids[min(start + chunk, len(ids)) - 1]
        build_features(events[(event_ids >= first) & (event_ids <= last)], as_of,
                       customers[(customer_ids >= first) & (customer_ids <= last)])


# ---------------------------------------------------------------- the naive loop


def _events_frame_from_values(rows: list[dict]) -> pd.DataFrame:
    from behavior.selectors import EVENT_COLUMNS

    frame = pd.DataFrame.from_records(rows, columns=list(EVENT_COLUMNS))
    for name, arrow_type in EVENT_COLUMNS.items():
        if pa.types.is_timestamp(arrow_type):
            frame[name] = pd.to_datetime(frame[name], utc=True).dt.as_unit("us")
        elif pa.types.is_integer(arrow_type):
            frame[name] = frame[name].astype("Int64")
        elif pa.types.is_floating(arrow_type):
            frame[name] = frame[name].astype("float64")
        else:
            frame[name] = frame[name].replace("", None)
    return frame


def naive_loop(count: int, as_of: datetime, models: dict, version_ids: dict[str, int], seed: int) -> float:
    """Per customer: its events by the ORM, its features, each target it is in the population of predicted and
    stored by update_or_create: seconds for `count`."""
    from behavior.core.features import build_features
    from behavior.models import Customer, Event, Score
    from behavior.selectors import EVENT_COLUMNS

    ids = np.fromiter(Customer.objects.values_list("pk", flat=True), dtype=np.int64)
    chosen = np.sort(np.random.default_rng(seed).choice(ids, size=min(count, len(ids)), replace=False))
    started = time.perf_counter()
    for customer in Customer.objects.filter(pk__in=chosen.tolist()).iterator(chunk_size=500):
        rows = list(Event.objects.filter(customer=customer, occurred_at__lt=as_of).values(*EVENT_COLUMNS))
        events = _events_frame_from_values(rows)
        one = pd.DataFrame({"customer_id": [customer.pk], "created_at": [pd.Timestamp(customer.created_at)],
                            "attributes": [customer.attributes or {}]})
        X = build_features(events, as_of, one)
        for target, model in models.items():
            if not model.definition.in_population(X)[0]:
                continue
            p = model.predict(X)
            Score.objects.update_or_create(customer=customer, target=target, defaults={
                "probability": float(p[0]), "model_version_id": version_ids[target], "run": None,
                "scored_at": as_of, "reasons": []})
    return time.perf_counter() - started


# ---------------------------------------------------------------- the phases


def phase_training(run: Run, as_of: datetime) -> None:
    from behavior.services.learning import models_train

    print("training both models ...", file=sys.stderr)
    peak_rss_reset()
    started = time.perf_counter()
    outcomes = models_train(as_of=as_of, on_progress=lambda m: print(f"  {m}", file=sys.stderr))
    run.training_seconds = time.perf_counter() - started
    run.training_peak_rss_mib = peak_rss_mib()
    run.training = [{"target": o.target, "kind": o.kind, "status": o.status, "rows": o.rows,
                     "positives": o.positives, "validation_rows": o.validation_rows, "seconds": o.seconds,
                     "roc_auc": o.metrics.get("roc_auc"), "threshold": o.metrics.get("threshold")}
                    for o in outcomes]
    print(f"  trained in {run.training_seconds:.1f} s", file=sys.stderr)


def phase_cycle(run: Run, as_of: datetime) -> None:
    from behavior.services.scoring import scoring_cycle_run

    print("the day's first scoring cycle, which also keeps a copy of its scores ...", file=sys.stderr)
    started = time.perf_counter()
    first = scoring_cycle_run(as_of=as_of, chunk_customers=run.chunk_customers)
    run.first_cycle_seconds = time.perf_counter() - started
    run.first_cycle_stage_seconds = dict(first.stage_seconds)
    print(f"  {run.first_cycle_seconds:.1f} s: {first.stage_seconds}", file=sys.stderr)

    # The one measured against the raw limits: an hourly cycle, overwriting the scores of the first.
    print("an hourly scoring cycle ...", file=sys.stderr)
    gc.collect()
    if not peak_rss_reset():
        run.notes.append("peak RSS of the cycle is the process's lifetime peak (/proc/self/clear_refs unavailable)")
    started = time.perf_counter()
    scored = scoring_cycle_run(as_of=as_of, chunk_customers=run.chunk_customers)
    run.cycle_seconds = time.perf_counter() - started
    run.cycle_peak_rss_mib = peak_rss_mib()
    run.cycle_customers = scored.customers
    run.cycle_stage_seconds = dict(scored.stage_seconds)
    print(f"  {scored.customers:,} customers in {run.cycle_seconds:.1f} s: {scored.stage_seconds}", file=sys.stderr)


def phase_raw(run: Run, as_of: datetime) -> tuple[dict, dict[str, int]]:
    """The raw limit of every stage on all the customers at once; returns the champions, loaded, and their ids."""
    from django.db import connection

    from behavior.core.features import build_features
    from behavior.core.training import _matrix
    from behavior.models import ModelVersion
    from behavior.selectors import customers_frame
    from behavior.services.registry import LoadedModel

    print("raw limits ...", file=sys.stderr)
    seconds: dict[str, float] = {}
    champions = {v.target: v for v in ModelVersion.objects.filter(status=ModelVersion.Status.CHAMPION)}
    models = {t: LoadedModel(v) for t, v in champions.items()}
    version_ids = {t: v.pk for t, v in champions.items()}

    gc.collect()
    with timed(seconds, "events COPY -> pyarrow -> pandas"):
        events = raw_events_copy(as_of)
    run.events = len(events)
    with timed(seconds, "customers COPY -> pandas (+ orjson)"):
        customers = raw_customers_copy()
    with timed(run.diagnostics, "customers_frame() (ORM + JSON per row), all customers"):
        customers_frame()
    with timed(run.diagnostics, "build_features, all customers at once"):
        X = build_features(events, as_of, customers)
    with timed(run.diagnostics, f"build_features in chunks of {run.chunk_customers:,} (frames in memory)"):
        features_in_chunks(events, customers, as_of, X.index.to_numpy(np.int64), run.chunk_customers)
    # The faster of the two: the cycle works in chunks, and build_features is not linear in the customers.
    seconds["build_features"] = min(v for k, v in run.diagnostics.items() if k.startswith("build_features"))
    del events
    gc.collect()
    scored: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for target, model in models.items():
        rows = X[model.definition.in_population(X)]
        if model.booster is None:
            run.notes.append(f"{target}: a transparent scorer serves, no XGBoost predict to measure")
            scored[target] = rows.index.to_numpy(np.int64), np.zeros(len(rows))
            continue
        matrix = _matrix(rows[list(model.booster.feature_names)])
        with timed(seconds, f"inplace_predict {target}"):
            scored[target] = rows.index.to_numpy(np.int64), model.booster.inplace_predict(matrix).astype(np.float64)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {SCRATCH_TABLE}")
        cursor.execute(f"CREATE TABLE {SCRATCH_TABLE} (LIKE behavior_score INCLUDING ALL)")
    with timed(seconds, "COPY the populations' rows into a scratch behavior_score"):
        raw_scores_write(scored, version_ids, as_of)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {SCRATCH_TABLE}")
    # Not a raw limit but a candidate for the cycle's write: the same COPY into a scratch table, then one
    # INSERT .. ON CONFLICT DO UPDATE into behavior_score (its rows exist after the cycle: the update path).
    with timed(run.diagnostics, "write alternative: COPY to scratch + INSERT .. ON CONFLICT into behavior_score"):
        raw_scores_write(scored, version_ids, as_of)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO behavior_score (customer_id, target, probability, model_version_id, run_id, scored_at,"
                f" reasons) SELECT customer_id, target, probability, model_version_id, run_id, scored_at, reasons"
                f" FROM {SCRATCH_TABLE} ON CONFLICT (customer_id, target) DO UPDATE SET"
                " probability = EXCLUDED.probability, model_version_id = EXCLUDED.model_version_id,"
                " run_id = EXCLUDED.run_id, scored_at = EXCLUDED.scored_at, reasons = EXCLUDED.reasons")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {SCRATCH_TABLE}")

    stage = run.cycle_stage_seconds
    predict_cycle = sum(v for k, v in stage.items() if k.startswith("predict_"))
    reasons_cycle = sum(v for k, v in stage.items() if k.startswith("reasons_"))
    predict_raw = sum(v for k, v in seconds.items() if k.startswith("inplace_predict"))
    run.stages = [
        Stage("read (events + customers)", stage.get("read"),
              seconds["events COPY -> pyarrow -> pandas"] + seconds["customers COPY -> pandas (+ orjson)"],
              "COPY events + COPY customers"),
        Stage("features", stage.get("features"), seconds["build_features"],
              "build_features on frames in memory (faster of once / in chunks)"),
        Stage("predict (both targets)", predict_cycle, predict_raw, "inplace_predict"),
        Stage("reasons (acted-on customers)", reasons_cycle, None, "no raw limit: part of the cycle's work"),
        Stage("write", stage.get("write"), seconds["COPY the populations' rows into a scratch behavior_score"],
              "COPY into a scratch table"),
    ]
    unstaged = run.cycle_seconds - sum(stage.values()) if run.cycle_seconds else None
    run.stages.append(Stage("unstaged (run start, model loads, Score objects)", unstaged, None, ""))
    run.diagnostics.update({f"raw: {k}": v for k, v in seconds.items()})
    return models, version_ids


def phase_naive(run: Run, as_of: datetime, models: dict, version_ids: dict[str, int], count: int,
                seed: int) -> None:
    from behavior.models import Customer

    print(f"naive per-customer ORM loop on {count:,} customers ...", file=sys.stderr)
    total = Customer.objects.count()
    run.naive_customers = min(count, total)
    run.naive_seconds = naive_loop(count, as_of, models, version_ids, seed)
    run.naive_extrapolated_seconds = run.naive_seconds / run.naive_customers * total
    print(f"  {run.naive_seconds:.1f} s, {run.naive_customers / run.naive_seconds:,.0f} customers/s", file=sys.stderr)


# ---------------------------------------------------------------- the report


def report(run: Run) -> str:
    m = run.machine
    lines = [
        f"Foresight scoring benchmark: {run.customers:,} customers, {run.events:,} events before {run.as_of}"
        f" ({run.source}); chunks of {run.chunk_customers:,} customers",
        f"machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, load {m['load']} at start;"
        f" Python {m['python']}, Django {m['django']}, XGBoost {m['xgboost']}, PostgreSQL {m['postgresql']}"
        f" on {run.database}",
        "",
    ]
    if run.training_seconds is not None:
        lines.append(f"training: {run.training_seconds:.1f} s for both targets, peak RSS"
                     f" {run.training_peak_rss_mib:,.0f} MiB")
        for t in run.training:
            auc = "-" if t["roc_auc"] is None else f"{t['roc_auc']:.3f}"
            lines.append(f"  {t['target']:<16} {t['kind']:<9} {t['status']:<9} {t['rows']:>11,} rows"
                         f" ({t['positives']:,} positive), {t['validation_rows']:,} validation,"
                         f" {t['seconds']:.1f} s, ROC AUC {auc}")
        lines.append("")
    if run.cycle_seconds:
        lines.append(f"cycle: {run.cycle_customers:,} customers in {run.cycle_seconds:.1f} s"
                     f" = {run.cycle_customers / run.cycle_seconds:,.0f} customers/s, peak RSS"
                     f" {run.cycle_peak_rss_mib:,.0f} MiB")
        lines.append("  per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in run.cycle_stage_seconds.items()))
        if run.first_cycle_seconds:
            keep = run.first_cycle_stage_seconds.get("keep", 0.0)
            lines.append(f"  the day's first cycle, which keeps a copy of its scores: {run.first_cycle_seconds:.1f} s,"
                         f" of which keeping them {keep:.1f} s (its scores were all new: write"
                         f" {run.first_cycle_stage_seconds.get('write', 0.0):.1f} s)")
        lines.append("")
    width = max([len(s.name) for s in run.stages] + [30])
    lines.append(f"{'stage':<{width}} {'cycle s':>8} {'raw s':>8} {'cycle/raw':>9}  raw limit")
    for s in run.stages:
        cycle = "-" if s.cycle is None else f"{s.cycle:.2f}"
        raw = "-" if s.raw is None else f"{s.raw:.2f}"
        ratio = f"{s.cycle / s.raw:.1f}x" if s.cycle is not None and s.raw else "-"
        lines.append(f"{s.name:<{width}} {cycle:>8} {raw:>8} {ratio:>9}  {s.raw_label}")
    if run.cycle_seconds and run.stages:
        lines.append(f"{'total':<{width}} {run.cycle_seconds:>8.2f} {run.raw_sum:>8.2f}"
                     f" {run.cycle_seconds / run.raw_sum:>8.1f}x  sum of the raw limits")
    lines.append("")
    for name, value in run.diagnostics.items():
        if not name.startswith("raw: "):
            lines.append(f"{name}: {value:.2f} s")
    if run.naive_seconds:
        lines.append(f"naive ORM loop: {run.naive_customers:,} customers in {run.naive_seconds:.1f} s"
                     f" ({run.naive_customers / run.naive_seconds:,.0f} customers/s), extrapolated to"
                     f" {run.customers:,}: {run.naive_extrapolated_seconds:,.0f} s")
    lines += ["", f"{'goal':<32} {'measured':>10} {'goal':>10}  status"]
    for label, name, threshold, sense in GOALS:
        value = run.figure(name)
        if value is None:
            lines.append(f"{label:<32} {'-':>10} {sense + ' ' + number(threshold):>10}  n/a")
            continue
        ok = value <= threshold if sense == "<=" else value >= threshold
        lines.append(f"{label:<32} {number(value):>10} {sense + ' ' + number(threshold):>10}"
                     f"  {'met' if ok else 'MISSED'}")
    lines += run.notes
    return "\n".join(lines)


def save(run: Run) -> Path:
    folder = ROOT / "bench" / "results"
    folder.mkdir(exist_ok=True)
    path = folder / f"scoring-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    data = asdict(run)
    data["goals"] = {name: run.figure(name) for _, name, _, _ in GOALS}
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return path


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=None,
                        help="shop size (default: the template's, 1,000,000, else a simulated 50,000)")
    parser.add_argument("--template", default=DEFAULT_TEMPLATE,
                        help="database copied when it holds --customers customers (default foresight_sim)")
    parser.add_argument("--as-of", default=DEFAULT_AS_OF, help="training and scoring time (the simulation end)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help="a PostgreSQL database on this machine; dropped and recreated")
    parser.add_argument("--chunk-customers", type=int, default=None, help="customers per chunk (default the cycle's)")
    parser.add_argument("--naive", type=int, default=2_000, help="customers of the naive ORM loop (default 2,000)")
    parser.add_argument("--seed", type=int, default=42, help="simulation seed, and the naive loop's sample")
    parser.add_argument("--keep", action="store_true", help="reuse the bench database as it is (no drop)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/scoring-*.json")
    args = parser.parse_args(argv)

    url = args.database_url
    _check_url(url)
    as_of = datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
    in_template = template_customers(url, args.template)
    customers = args.customers or in_template or SMALL_SHOP
    clone = in_template is not None and customers == in_template and not args.keep
    if args.keep:
        source, server = "existing bench database", database_recreate_facts(url)
    elif clone:
        print(f"copying {args.template} ({in_template:,} customers) ...", file=sys.stderr)
        source, server = f"copy of {args.template}", database_recreate(url, args.template)
    else:
        source, server = f"simulate_shop --customers {customers} --days 90 --seed {args.seed}", database_recreate(
            url, None)
    django_setup(url)
    from django.core.management import call_command

    from behavior.services.scoring import CHUNK_CUSTOMERS

    call_command("migrate", verbosity=0)
    if not clone and not args.keep:
        print(f"simulating {customers:,} customers ...", file=sys.stderr)
        call_command("simulate_shop", customers=customers, days=90, seed=args.seed, end=as_of, verbosity=0)
    run = Run(customers=customers, events=0, as_of=f"{as_of:%Y-%m-%d %H:%M} UTC", database=redacted(url),
              source=source, chunk_customers=args.chunk_customers or CHUNK_CUSTOMERS)
    run.machine = machine_facts(server)

    phase_training(run, as_of)
    phase_cycle(run, as_of)
    models, version_ids = phase_raw(run, as_of)
    if args.naive:
        phase_naive(run, as_of, models, version_ids, args.naive, args.seed)
    print()
    print(report(run))
    if not args.no_save:
        print(f"\nsaved {save(run).relative_to(ROOT)}")
    return 0


def database_recreate_facts(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as connection:
        return {s: connection.execute(f"SHOW {s}").fetchone()[0]
                for s in ("server_version", "shared_buffers", "work_mem", "synchronous_commit")}



if __name__ == "__main__":
    sys.exit(main())
