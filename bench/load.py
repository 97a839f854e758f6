"""Load test: storefront calls and event ingest together, at a held arrival rate, on loopback.

    .venv/bin/python bench/load.py [--rate R] [--seconds S] [--steps 40,80,...]

The shop of bench/api.py is served by gunicorn; client threads of this process send a fixed mix of
placements, event batches, identify calls and coupon redemptions on a precomputed Poisson schedule
(open loop: a slow answer does not slow the arrivals), so latency is measured at a rate, not at
saturation. A short step-up finds the rate the machine holds; the timed phase runs below it. Afterwards
the database must hold every sent event exactly once, on the right customer, and every redemption.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path

from bench._common import machine_facts, redacted  # noqa: E402
from bench.api import (  # noqa: E402
    DEFAULT_REDIS_URL,
    BenchError,
    Caller,
    coupons_of_shop,
    django_env,
    django_setup,
    gunicorn,
    percentiles,
    placements_call,
    redacted_redis,
    redeem_call,
    redis_reset,
    shop_create,
)
from bench.ingest import api_bodies, database_recreate, events_generate, measured  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/foresight_bench_load"
BATCH = 100  # events per POST /api/v1/events, as a shop's tracker flushes them

# The mix, per placements call (a page with the "home" slot). A third of a shop's pages carry the slot,
# and a page sends about three events (the view, clicks, product impressions), plus the backend's order
# events: ten events per placements call. One in twenty such pages is a login (identify), one in fifty
# a checkout with a coupon.
EVENTS_PER_PLACEMENT = 10
IDENTIFY_PER_PLACEMENT = 0.05
REDEEM_PER_PLACEMENT = 0.02
ANONYMOUS_SESSIONS = 0.15  # sessions tracked before login: their events carry an anonymous id, no customer
KINDS = ("placements", "events", "identify", "redeem")

# The step-up: a level is held when every call was answered without error, the answers kept pace with
# the arrivals, and the tail stayed near the lowest level's (queueing, not service, makes a tail grow).
HELD_SHARE = 0.97
TAIL_GROWTH = 4.0  # 3x broke levels at 58% busy cores in one run of three: the lowest level's p95 varies 14 to 18 ms
TARGET_SHARE = 0.75  # the timed phase runs at this share of the highest level held: loaded, not saturated
NOISY_SHARE = 0.15  # of the cores used by other processes during a phase: its figures say more about them
LATE_MS = 10.0  # a call sent this much after its time means the client, not the server, fell behind


def per_second(kind: str, rate: float) -> float:
    """Arrivals per second of one kind of call when placements arrive at `rate`."""
    return rate * {"placements": 1.0, "events": EVENTS_PER_PLACEMENT / BATCH, "identify": IDENTIFY_PER_PLACEMENT,
                   "redeem": REDEEM_PER_PLACEMENT}[kind]


def mix_text() -> str:
    per = 100
    events = per * EVENTS_PER_PLACEMENT
    return (f"per {per} placements calls: {events:,} events in {events // BATCH} batches of {BATCH},"
            f" {per * IDENTIFY_PER_PLACEMENT:.0f} identify calls (logins),"
            f" {per * REDEEM_PER_PLACEMENT:.0f} coupon redemptions; {ANONYMOUS_SESSIONS:.0%} of sessions"
            " anonymous until identified; Poisson arrivals")


@dataclass
class Phase:
    """One schedule run: offered and held rates, latencies per kind of call, CPU (see bench.ingest.measured)."""

    name: str
    rate: float  # placements per second offered; the other kinds follow the mix
    duration: float  # length of the schedule
    span: float = 0.0  # from the schedule's start to the last answer
    seconds: float = 0.0  # wall time of the phase, over which its CPU is measured
    held_level: bool | None = None  # step-up only
    events: int = 0  # events accepted
    events_offered: int = 0  # events in the planned batches
    errors: int = 0
    first_error: str = ""
    late: int = 0  # calls sent more than LATE_MS after their time
    by_kind: dict[str, dict] = field(default_factory=dict)
    app_cpu: float | None = None
    postgres_cpu: float | None = None
    client_cpu: float | None = None
    other_cpu: float | None = None

    @property
    def requests(self) -> int:
        return sum(k["requests"] for k in self.by_kind.values())

    @property
    def offered(self) -> float:
        return sum(k["offered"] for k in self.by_kind.values()) / self.duration

    @property
    def held(self) -> float:
        return self.requests / max(self.span, self.duration)

    @property
    def events_per_second(self) -> float:
        return self.events / max(self.span, self.duration)

    def busy(self, cores: int) -> dict[str, float]:
        """Share of the machine's cores each group used during the phase."""
        time_ = (self.seconds or self.duration) * cores
        return {k: (v or 0.0) / time_ for k, v in (("app", self.app_cpu), ("pg", self.postgres_cpu),
                                                    ("client", self.client_cpu), ("other", self.other_cpu))}


@dataclass
class Run:
    customers: int
    workers: int
    connections: int
    seconds: float
    warm_seconds: float
    step_seconds: float
    database: str
    cache: str
    mix: str
    machine: dict = field(default_factory=dict)
    shop: dict = field(default_factory=dict)
    steps: list[Phase] = field(default_factory=list)
    held_level: float | None = None
    target: float = 0.0
    target_source: str = ""
    timed: Phase | None = None
    checks: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    load_after: str = ""


# ---------------------------------------------------------------- what the clients send


class Traffic:
    """The calls' payloads, handed out in order: event batches, coupons, anonymous visitors who log in.

    It also remembers what was sent, so the database can be checked against it afterwards.
    """

    def __init__(self, *, customers: int, coupons: list[tuple[str, str]], seed: int):
        self.customers = [f"cust-{i:06d}" for i in range(customers)]
        self.coupons = iter(coupons)
        self.rng = random.Random(seed)
        self.seed = seed
        self.chunks = 0
        self.batches: deque[tuple[bytes, pd.DataFrame, list[tuple[str, str]]]] = deque()
        # Shop products as bench/api.py makes them, so events name known products.
        self.products = pd.DataFrame({"external_id": [f"sku-{i:05d}" for i in range(500)],
                                      "category": [f"category-{i % 20}" for i in range(500)],
                                      "price": 19.90})
        self.sent: list[pd.DataFrame] = []  # event_id, owner, anonymous_id of every batch sent
        self.loggable: deque[tuple[str, str]] = deque()  # (anonymous id, customer) of answered batches
        self.identified: dict[str, str] = {}  # anonymous id -> customer, answered 200
        self.redeemed: list[str] = []  # codes answered 200
        self.orders = 0
        self.fresh_visitors = 0

    def ensure(self, batches: int) -> None:
        """Generate events until `batches` batches wait (outside the timed phases: ~15 s per 100,000 events)."""
        while len(self.batches) < batches:
            self.chunks += 1
            n = max(50_000, (batches - len(self.batches)) * BATCH)
            events = events_generate(n, customers=len(self.customers), products=self.products,
                                     seed=self.seed * 1000 + self.chunks, now=datetime.now(UTC))
            sessions = events["session_id"].unique()
            anonymous = set(np.random.default_rng(self.chunks).choice(
                sessions, size=int(len(sessions) * ANONYMOUS_SESSIONS), replace=False))
            is_anonymous = events["session_id"].isin(anonymous)
            owner = events["customer"].copy()
            events.loc[is_anonymous, "anonymous_id"] = "anon-" + events.loc[is_anonymous, "session_id"].str[2:]
            events.loc[is_anonymous, "customer"] = None
            events["owner"] = owner
            offset = 0
            for body in api_bodies(events.drop(columns="owner")):  # batches of 1,000, split as the tracker sends
                records = orjson.loads(body)
                for i in range(0, len(records), BATCH):
                    part = records[i : i + BATCH]
                    rows = events.iloc[offset : offset + len(part)][["event_id", "anonymous_id", "owner"]]
                    offset += len(part)
                    visitors = list(rows.loc[rows["anonymous_id"].notna(), ["anonymous_id", "owner"]]
                                    .drop_duplicates("anonymous_id").itertuples(index=False, name=None))
                    self.batches.append((orjson.dumps(part), rows, visitors))

    # Each `next_*` runs under the clients' lock.

    def next_placements(self):
        return placements_call(self.rng.choice(self.customers))

    def next_events(self):
        body, rows, visitors = self.batches.popleft()
        self.sent.append(rows)

        def check(status: int, content: bytes) -> str | None:
            if status != 200:
                return f"HTTP {status}: {content[:300]!r}"
            report = orjson.loads(content)
            if len(report["accepted"]) != len(rows) or report["duplicates"] or report["rejected"]:
                return (f"accepted {len(report['accepted'])} of {len(rows)}, duplicates {len(report['duplicates'])},"
                        f" rejected {report['rejected'][:2]}")
            return None

        def answered() -> None:  # the visitors of an answered batch may log in from now on
            self.loggable.extend(v for v in visitors if v[0] not in self.identified)

        return ("events", "POST", "/api/v1/events", "ingest", body, check), len(rows), answered

    def next_identify(self):
        # The oldest visitor seen in an answered batch logs in; when none waits, a visitor on their first page.
        while self.loggable and self.loggable[0][0] in self.identified:
            self.loggable.popleft()
        if self.loggable:
            anonymous_id, customer = self.loggable.popleft()
        else:
            self.fresh_visitors += 1
            anonymous_id, customer = f"anon-fresh-{self.seed}-{self.fresh_visitors}", self.rng.choice(self.customers)
        self.identified[anonymous_id] = ""  # taken; set to the customer when answered

        def check(status: int, content: bytes) -> str | None:
            if status != 200:
                return f"HTTP {status}: {content[:300]!r}"
            return None if orjson.loads(content).get("customer") == customer else f"unexpected {content[:300]!r}"

        def answered() -> None:
            self.identified[anonymous_id] = customer

        body = orjson.dumps({"anonymous_id": anonymous_id, "customer": customer})
        return ("identify", "POST", "/api/v1/identify", "ingest", body, check), 0, answered

    def next_redeem(self):
        code, customer = next(self.coupons)
        self.orders += 1
        return redeem_call(code, customer, self.orders), 0, lambda: self.redeemed.append(code)


def schedule(rate: float, seconds: float, rng: np.random.Generator) -> list[tuple[float, str]]:
    """Poisson arrivals of each kind over `seconds`, merged in time order."""
    plan = []
    for kind in KINDS:
        lam = per_second(kind, rate)
        count = rng.poisson(lam * seconds)
        plan += [(float(t), kind) for t in np.sort(rng.uniform(0, seconds, size=count))]
    return sorted(plan)


def drive(port: int, keys: list[dict[str, str]], traffic: Traffic, plan: list[tuple[float, str]],
          connections: int) -> tuple[dict[str, dict[str, list]], float, list[str], int, int]:
    """Send each planned call at its time from a pool of `connections` threads; latency counts from the plan.

    A call waits for a free thread when all are busy: that wait is part of its latency (no coordinated
    omission), and counted as late when it exceeds LATE_MS.
    """
    lock = threading.Lock()
    position = 0
    samples: dict[str, dict[str, list]] = {k: {"latency": [], "service": []} for k in KINDS}
    problems: list[str] = []
    accepted = 0
    late = 0
    last = 0.0
    start_barrier = threading.Barrier(connections + 1)
    start = 0.0
    makers: dict[str, Callable] = {"placements": lambda: (traffic.next_placements(), 0, None),
                                   "events": traffic.next_events, "identify": traffic.next_identify,
                                   "redeem": traffic.next_redeem}

    def client(index: int) -> None:
        nonlocal position, accepted, late, last
        caller = Caller(port, keys[index])
        start_barrier.wait()
        try:
            while True:
                with lock:
                    if position >= len(plan):
                        return
                    at, kind = plan[position]
                    position += 1
                due = start + at
                if (wait := due - time.perf_counter()) > 0:
                    time.sleep(wait)
                with lock:
                    call, size, answered = makers[kind]()
                _, method, path, scope, body, check = call
                sent = time.perf_counter()
                try:
                    status, content = caller.call(method, path, scope, body)
                except OSError as error:
                    status, content = 0, repr(error).encode()
                done = time.perf_counter()
                problem = check(status, content)
                with lock:
                    samples[kind]["latency"].append(done - due)
                    samples[kind]["service"].append(done - sent)
                    late += (sent - due) * 1000 > LATE_MS
                    last = max(last, done)
                    if problem:
                        problems.append(f"{kind} {path}: {problem}")
                    else:
                        accepted += size
                        if answered:
                            answered()
        finally:
            caller.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    start = time.perf_counter() + 0.05
    start_barrier.wait()
    for thread in threads:
        thread.join()
    return samples, max(0.0, last - start), problems, accepted, late


def phase_run(run: Run, name: str, rate: float, seconds: float, *, port: int, master: int, url: str,
              keys: list[dict[str, str]], traffic: Traffic, rng: np.random.Generator, timed: bool = True) -> Phase:
    plan = schedule(rate, seconds, rng)
    traffic.ensure(sum(1 for _, kind in plan if kind == "events") + 1)
    phase = Phase(name, rate, seconds)
    phase.events_offered = sum(len(rows) for _, rows, _ in itertools.islice(
        traffic.batches, sum(1 for _, kind in plan if kind == "events")))
    if timed:
        with measured(phase, url, master):
            samples, span, problems, accepted, late = drive(port, keys, traffic, plan, run.connections)
    else:
        began = time.perf_counter()
        samples, span, problems, accepted, late = drive(port, keys, traffic, plan, run.connections)
        phase.seconds = time.perf_counter() - began
    phase.span, phase.events, phase.late = span, accepted, late
    phase.errors, phase.first_error = len(problems), problems[0] if problems else ""
    offered = {k: sum(1 for _, kind in plan if kind == k) for k in KINDS}
    for kind in KINDS:
        latency = samples[kind]["latency"]
        phase.by_kind[kind] = {"offered": offered[kind], "requests": len(latency), **percentiles(latency),
                               "service": percentiles(samples[kind]["service"])}
    run.problems += problems
    print(f"  {name}: {phase.offered:,.0f} req/s offered, {phase.held:,.0f} held, {phase.events_per_second:,.0f}"
          f" events/s, placements p95 {phase.by_kind['placements']['p95_ms']:.1f} ms, errors {phase.errors},"
          f" late {phase.late}", file=sys.stderr)
    return phase


def level_held(phase: Phase, first: Phase) -> bool:
    if phase.errors or phase.held < HELD_SHARE * phase.offered:
        return False
    return all(phase.by_kind[k]["p95_ms"] <= TAIL_GROWTH * max(first.by_kind[k]["p95_ms"], 1.0)
               for k in ("placements", "events") if phase.by_kind[k]["requests"])


# ---------------------------------------------------------------- afterwards: what the database holds


def database_check(url: str, traffic: Traffic, seeded_events: int, spent_before: Decimal) -> dict:
    """Every sent event stored once, on its customer; every identify linked; every redemption recorded once."""
    sent = pd.concat(traffic.sent, ignore_index=True) if traffic.sent else pd.DataFrame(
        columns=["event_id", "anonymous_id", "owner"])
    identified = {a: c for a, c in traffic.identified.items() if c}
    # Known customers' events go to them; an anonymous visitor's to their customer once identified, else to nobody.
    expected = [owner if pd.isna(anonymous_id) else identified.get(anonymous_id)
                for anonymous_id, owner in zip(sent["anonymous_id"], sent["owner"], strict=True)]
    with psycopg.connect(url) as connection:
        connection.execute("CREATE TEMPORARY TABLE sent (event_id uuid, customer text)")
        with connection.cursor().copy("COPY sent (event_id, customer) FROM STDIN") as copy:
            for event_id, customer in zip(sent["event_id"], expected, strict=True):
                copy.write_row((event_id, customer))
        one = lambda query, *params: connection.execute(query, params).fetchone()  # noqa: E731
        stored_total = one("SELECT count(*) FROM behavior_event")[0]
        stored_sent, distinct_sent = one(
            "SELECT count(*), count(DISTINCT e.event_id) FROM behavior_event e JOIN sent s USING (event_id)")
        wrong_owner, wrong_sample = one(
            "SELECT count(*), (array_agg(s.event_id::text || ': ' || coalesce(c.external_id, 'nobody')"
            " || ' not ' || coalesce(s.customer, 'nobody')))[1:3]"
            " FROM behavior_event e JOIN sent s USING (event_id) LEFT JOIN behavior_customer c ON c.id = e.customer_id"
            " WHERE c.external_id IS DISTINCT FROM s.customer")
        links = connection.execute(
            "SELECT l.anonymous_id, c.external_id FROM behavior_anonymouslink l JOIN behavior_customer c"
            " ON c.id = l.customer_id").fetchall()
        redeemed = one("SELECT count(*), count(DISTINCT code), coalesce(sum(discount_amount), 0),"
                       " count(*) FILTER (WHERE redeemed_at IS NULL OR discount_amount <> 4.00)"
                       " FROM campaigns_coupon WHERE redeemed_at IS NOT NULL OR order_id <> ''")
        codes = {row[0] for row in connection.execute(
            "SELECT code FROM campaigns_coupon WHERE redeemed_at IS NOT NULL OR order_id <> ''").fetchall()}
        spent_after = one("SELECT sum(discount_spent) FROM campaigns_campaign")[0]
    links = dict(links)
    checks = {
        "events_sent": len(sent),
        "events_stored_of_sent": stored_sent,
        "events_distinct_of_sent": distinct_sent,
        "events_in_table": stored_total,
        "events_expected_in_table": seeded_events + len(sent),
        "events_on_wrong_customer": wrong_owner,
        "events_on_wrong_customer_sample": wrong_sample or [],
        "anonymous_events_sent": int(sent["anonymous_id"].notna().sum()),
        "identified": len(identified),
        "links_matching": sum(1 for a, c in identified.items() if links.get(a) == c),
        "redemptions_answered": len(traffic.redeemed),
        "redemptions_stored": redeemed[0],
        "redemptions_distinct_codes": redeemed[1],
        "redemptions_bad": redeemed[3],
        "redemptions_answered_and_stored": len(codes & set(traffic.redeemed)),
        "discount_stored": str(redeemed[2]),
        "budget_spent_delta": str((spent_after or Decimal(0)) - spent_before),
    }
    problems = []
    if not stored_sent == distinct_sent == len(sent):
        problems.append(f"{len(sent):,} events sent, {stored_sent:,} stored ({distinct_sent:,} distinct ids)")
    if stored_total != seeded_events + len(sent):
        problems.append(f"{stored_total:,} events in the table, expected {seeded_events + len(sent):,}")
    if wrong_owner:
        problems.append(f"{wrong_owner:,} events on another customer than expected, e.g. {wrong_sample}")
    if checks["links_matching"] != len(identified):
        problems.append(f"{len(identified) - checks['links_matching']} identified visitors without their link")
    n = len(traffic.redeemed)
    if not (redeemed[0] == redeemed[1] == checks["redemptions_answered_and_stored"] == n) or redeemed[3]:
        problems.append(f"{n} redemptions answered, {redeemed[0]} stored ({redeemed[3]} without the 4.00 discount)")
    if Decimal(checks["discount_stored"]) != Decimal(checks["budget_spent_delta"]) or redeemed[2] != 4 * n:
        problems.append(f"discounts {redeemed[2]} stored, budget spent grew by {checks['budget_spent_delta']}")
    checks["problems"] = problems
    return checks


# ---------------------------------------------------------------- report


def report(run: Run) -> str:
    m = run.machine
    cores = m.get("cores") or 1
    lines = [
        f"Foresight load test: {run.shop['customers']:,} customers, {run.shop['coupons']:,} coupons,"
        f" {run.shop['assignments']:,} live treatment assignments",
        f"machine: {cores} cores ({m['cpu']}), {m['memory_gib']} GiB, load {m['load']} at start, {run.load_after}"
        f" at the end; Python {m['python']}, Django {m['django']}, PostgreSQL {m['postgresql']} on {run.database}",
        f"server: gunicorn config.wsgi, {run.workers} sync workers, DEBUG off; throttle cache {run.cache}",
        f"client: {run.connections} threads of this process (http.client), open loop on a precomputed schedule;"
        " latency from each call's planned time to its answer",
        f"mix: {run.mix}",
        "",
    ]
    if run.steps:
        lines.append(f"step-up ({run.step_seconds:.0f} s a level; held = no error, answers >= {HELD_SHARE:.0%} of"
                     f" arrivals, p95 of placements and events within {TAIL_GROWTH:.0f}x the lowest level's):")
        lines.append(f"  {'placements/s':>12} {'req/s offered':>13} {'held':>6} {'events/s':>8} {'p95 ms: plc':>11}"
                     f" {'events':>6} {'p99 plc':>7}   cores busy: app   pg  other")
        for s in run.steps:
            busy = s.busy(cores)
            verdict = ("held" if s.held_level else "NOT held") + (" (again: others were busy)" if s.name.endswith(
                "again") else "")
            lines.append(f"  {s.rate:>12,.0f} {s.offered:>13,.0f} {s.held:>6,.0f} {s.events_per_second:>8,.0f}"
                         f" {s.by_kind['placements']['p95_ms']:>11.1f} {s.by_kind['events']['p95_ms']:>6.1f}"
                         f" {s.by_kind['placements']['p99_ms']:>7.1f}   {'':11}{busy['app']:>3.0%} {busy['pg']:>4.0%}"
                         f" {busy['other']:>6.0%}  {verdict}")
        lines.append("")
    t = run.timed
    if t:
        busy = t.busy(cores)
        lines += [
            f"timed: {t.duration:.0f} s after {run.warm_seconds:.0f} s of warm-up, at {run.target:,.0f} placements/s"
            f" ({run.target_source})",
            f"  {'call':<11} {'offered/s':>9} {'held/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}"
            f" {'errors':>6}   service p95",
        ]
        for kind in KINDS:
            k = t.by_kind[kind]
            held = k["requests"] / max(t.span, t.duration)
            lines.append(f"  {kind:<11} {k['offered'] / t.duration:>9,.1f} {held:>7,.1f}"
                         f" {k['p50_ms']:>7.1f} {k['p95_ms']:>7.1f} {k['p99_ms']:>7.1f} {k['max_ms']:>7.0f}"
                         f" {'':>6}   {k['service']['p95_ms']:>7.1f}")
        lines += [
            f"  {'all':<11} {t.offered:>9,.1f} {t.held:>7,.1f} {'':>7} {'':>7} {'':>7} {'':>7} {t.errors:>6}",
            f"  events ingested: {t.events_per_second:,.0f}/s held of"
            f" {t.events_offered / t.duration:,.0f}/s offered ({t.events:,} events in {t.duration:.0f} s)",
            f"  the cores were {sum(busy.values()):.0%} busy: gunicorn {busy['app']:.0%}, PostgreSQL"
            f" {busy['pg']:.0%}, this client {busy['client']:.0%}, everything else {busy['other']:.0%};"
            f" {t.late} calls sent more than {LATE_MS:.0f} ms late",
            "",
        ]
    if line := cost_line(run):
        lines += [line, ""]
    c = run.checks
    if c:
        lines.append(
            f"database: {c['events_stored_of_sent']:,} of {c['events_sent']:,} sent events stored"
            f" ({c['events_distinct_of_sent']:,} distinct; table {c['events_in_table']:,}, expected"
            f" {c['events_expected_in_table']:,}), {c['events_on_wrong_customer']} on a wrong customer"
            f" ({c['anonymous_events_sent']:,} anonymous, {c['identified']:,} visitors identified,"
            f" {c['links_matching']:,} links right); {c['redemptions_stored']:,} of {c['redemptions_answered']:,}"
            f" redemptions stored once, discounts {c['discount_stored']} = budget spent {c['budget_spent_delta']}")
    failed = run.problems + c.get("problems", [])
    lines.append(f"ERRORS: {len(failed)}; first: {failed[0]}" if failed else "errors: none (every answer as expected,"
                 " the database agrees)")
    noisy = [p.name for p in [*run.steps, *([t] if t else [])] if p.busy(cores)["other"] > NOISY_SHARE]
    if noisy:
        lines.append(f"NOISY: other processes used more than 15% of the cores during {', '.join(noisy)};"
                     " rerun on a quiet machine before trusting those figures.")
    return "\n".join(lines)


def cost_line(run: Run) -> str | None:
    """CPU per placements call with its share of the mix, and the rate at which the cores would be full."""
    phases = [p for p in (*run.steps, run.timed) if p and p.by_kind["placements"]["requests"]]
    used = {k: sum((getattr(p, f"{k}_cpu") or 0.0) for p in phases) for k in ("app", "postgres", "client")}
    calls = sum(p.by_kind["placements"]["requests"] for p in phases)
    if not calls or not used["app"]:
        return None
    per_call = {k: 1000 * v / calls for k, v in used.items()}
    cores = run.machine.get("cores") or 1
    return (f"CPU per placements call with its share of the mix: {sum(per_call.values()):.1f} ms (gunicorn"
            f" {per_call['app']:.1f}, PostgreSQL {per_call['postgres']:.1f}, client {per_call['client']:.1f}):"
            f" {cores} idle cores would be full near {1000 * cores / sum(per_call.values()):,.0f} placements/s")


def save(run: Run) -> Path:
    folder = ROOT / "bench" / "results"
    folder.mkdir(exist_ok=True)
    path = folder / f"load-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    data = asdict(run)
    for phase, item in zip([*run.steps, *([run.timed] if run.timed else [])],
                           [*data["steps"], *([data["timed"]] if run.timed else [])], strict=True):
        item.update(offered_per_second=phase.offered, held_per_second=phase.held,
                    events_per_second=phase.events_per_second, cores_busy=phase.busy(run.machine.get("cores") or 1))
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=0.0,
                        help="placements per second of the timed phase (the rest follows the mix); default: "
                        f"{TARGET_SHARE:.0%} of the highest step-up level held")
    parser.add_argument("--steps", default="30,60,90,120,150,180,210,240",
                        help="step-up levels, placements per second (stops at the first not held)")
    parser.add_argument("--step-seconds", type=float, default=6.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="timed phase (default 60)")
    parser.add_argument("--warm-seconds", type=float, default=10.0, help="warm-up at the target rate (default 10)")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers (default 3, as bench/api.py)")
    parser.add_argument("--connections", type=int, default=64, help="client threads (calls in flight at most)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help="a PostgreSQL database on this machine; dropped and recreated")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis for the throttle counts (emptied at the start); '' for per-process memory")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/load-*.json")
    args = parser.parse_args(argv)

    url = args.database_url
    run = Run(customers=args.customers, workers=args.workers, connections=args.connections, seconds=args.seconds,
              warm_seconds=args.warm_seconds, step_seconds=args.step_seconds, database=redacted(url),
              cache=redacted_redis(args.redis_url), mix=mix_text())
    print("creating and migrating the bench database ...", file=sys.stderr)
    server = database_recreate(url)
    redis_reset(args.redis_url)
    django_setup(url, args.redis_url)
    run.machine = machine_facts(server)
    print(f"creating {args.customers:,} customers, scores, campaigns, assignments and coupons ...", file=sys.stderr)
    run.shop = shop_create(customers=args.customers, seed=args.seed, now=datetime.now(UTC))

    from behavior.models import Event
    from behavior.services.api_keys import api_key_create
    from campaigns.models import Campaign

    coupons = coupons_of_shop()
    random.Random(args.seed).shuffle(coupons)
    traffic = Traffic(customers=args.customers, coupons=coupons, seed=args.seed)
    # One key per client thread and scope, as in bench/api.py: the default 6,000/min per key never refuses.
    keys = [{scope: api_key_create(name=f"load {scope} {i}", scopes=[scope])[1] for scope in ("ingest", "checkout")}
            for i in range(args.connections)]
    seeded_events = Event.objects.count()
    spent_before = sum((c.discount_spent for c in Campaign.objects.all()), Decimal(0))
    rng = np.random.default_rng(args.seed)
    levels = [float(v) for v in args.steps.split(",") if v.strip()]

    with tempfile.TemporaryDirectory(prefix="foresight-bench-load-") as folder, \
            gunicorn(django_env(url, args.redis_url), args.workers, 1, Path(folder) / "gunicorn.log") \
            as (port, master):
        try:
            common = {"port": port, "master": master, "url": url, "keys": keys, "traffic": traffic, "rng": rng}
            print(f"warming {args.workers} workers ...", file=sys.stderr)
            phase_run(run, "warm", min(levels or [40.0]), 4.0, timed=False, **common)
            if not args.rate:
                print("step-up ...", file=sys.stderr)
                cores = run.machine.get("cores") or 1
                for level in levels:
                    step = phase_run(run, f"step {level:.0f}", level, args.step_seconds, **common)
                    run.steps.append(step)
                    step.held_level = level_held(step, run.steps[0])
                    if not step.held_level and step.busy(cores)["other"] > NOISY_SHARE:
                        # The neighbours, not the load, may have broken it: one more try at the same level.
                        print("  other processes were busy: once more", file=sys.stderr)
                        step = phase_run(run, f"step {level:.0f} again", level, args.step_seconds, **common)
                        run.steps.append(step)
                        step.held_level = level_held(step, run.steps[0])
                    if not step.held_level:
                        break
                    run.held_level = level
                if run.held_level is None:
                    raise BenchError(f"the lowest level ({levels[0]:.0f} placements/s) was not held: see the step-up")
                run.target = 5 * math.floor(TARGET_SHARE * run.held_level / 5)
                run.target_source = f"{TARGET_SHARE:.0%} of {run.held_level:,.0f}, the highest step-up level held"
            else:
                run.target, run.target_source = args.rate, "--rate"
            print(f"warm-up and timed phase at {run.target:,.0f} placements/s ...", file=sys.stderr)
            phase_run(run, "warm-up", run.target, args.warm_seconds, timed=False, **common)
            run.timed = phase_run(run, "timed", run.target, args.seconds, **common)
        except BenchError:
            print((Path(folder) / "gunicorn.log").read_text()[-3000:], file=sys.stderr)
            raise
    print("checking the database ...", file=sys.stderr)
    run.checks = database_check(url, traffic, seeded_events, spent_before)
    run.load_after = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print()
    print(report(run))
    if not args.no_save:
        print(f"\nsaved {save(run).relative_to(ROOT)}")
    return 1 if run.problems or run.checks["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
