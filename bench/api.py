"""Storefront API latency: placements and coupon redemption under concurrent clients, beside baselines.

    .venv/bin/python bench/api.py [--clients C] [--workers W] [--threads T] [--seconds S]

A shop of scored customers with live ad and price-offer assignments is served by gunicorn on a
loopback port; client threads of this process call the two storefront endpoints as fast as the
server answers (closed loop). The same run measures a trivial endpoint through the same stack and
the service functions called in-process, so the ratios say where the time goes. See bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import numpy as np
import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path

from behavior.api.tokens import customer_token  # noqa: E402  (plain module: hmac, nothing of Django at import)
from bench._common import machine_facts, redacted  # noqa: E402
from bench.ingest import LOOPBACK, BenchError, database_recreate, gunicorn, measured  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/foresight_bench_api"
# Tests use Redis databases 14 and 15; the bench keeps its throttle counts apart, in 13, and empties it.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
# The goal (issue 12), against the JSON-404 floor of the same run, so that it carries between machines and
# holds on a busy one: at --clients clients, at least half the floor's throughput, at most 3x its p95.
GOAL_RATE_SHARE = 0.5
GOAL_P95_RATIO = 3.0
SLOT = "home"
ITEMS = [{"product": "sku-00001", "category": "shoes", "price": "40.00", "quantity": 1}]
MIXED_REDEEM_SHARE = 0.2  # of the mixed phase's calls: one checkout for four page views
SWEEP = (2, 4, 8, 16)  # fewer clients on placements: how latency grows with the calls in flight
CUSTOMER_TOKEN_HEADER = "X-Customer-Token"  # behavior.api.auth's; that module needs Django set up to import
# More calls a minute than one closed-loop client thread sends on a fast machine (the JSON-404 floor,
# the cheapest call, measured 1,500/s with 1 client): every client has its own keys, and all come from
# 127.0.0.1, so limits at this rate per key and per address count every call but never refuse one.
CLIENT_CEILING_PER_MINUTE = 300_000


@dataclass
class Figure:
    """One phase: latencies as the client saw them, and CPU by process group (see bench.ingest.measured)."""

    name: str
    label: str
    clients: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    max_ms: float = 0.0
    app_cpu: float | None = None
    postgres_cpu: float | None = None
    client_cpu: float | None = None
    other_cpu: float | None = None
    first_error: str = ""
    by_call: dict[str, dict] = field(default_factory=dict)  # mixed phase: percentiles per endpoint

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def cpu_ms_per_request(self) -> dict[str, float]:
        if not self.requests:
            return {}
        parts = {"app": self.app_cpu, "pg": self.postgres_cpu, "client": self.client_cpu, "other": self.other_cpu}
        return {k: 1000 * v / self.requests for k, v in parts.items() if v is not None}


@dataclass
class Run:
    customers: int
    clients: int
    workers: int
    threads: int
    seconds: float
    database: str
    cache: str
    rate_limit: str
    machine: dict = field(default_factory=dict)
    shop: dict = field(default_factory=dict)
    queries: dict = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def figure(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)


def percentiles(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples) * 1000
    if not len(values):
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0, "max_ms": 0.0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "mean_ms": float(values.mean()),
            "max_ms": float(values.max())}


# ---------------------------------------------------------------- the shop


def django_setup(url: str, redis_url: str) -> None:
    os.environ.update(django_env(url, redis_url))
    import django

    django.setup()


def django_env(url: str, redis_url: str, rates: dict[str, str] | None = None) -> dict[str, str]:
    # Named, since config.wsgi defaults to the production settings. DEBUG keeps every query in memory
    # and is not how anyone serves.
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": url, "DJANGO_DEBUG": "0",
           "REDIS_URL": redis_url, "LOG_LEVEL": "ERROR"}  # not a warning line per 404 of the floor phase
    return {**env, **(rates or {})}


def rates_of(args: argparse.Namespace) -> dict[str, str]:
    """The throttle rates the server gets: the load of one client fits each, so no phase meets a 429."""
    return {"API_RATE_PER_KEY": args.rate, "API_RATE_PER_ADDRESS": args.rate_per_address,
            "API_RATE_PER_CUSTOMER": args.rate_per_customer}


def redis_reset(redis_url: str) -> None:
    if not redis_url:
        return
    host = urlsplit(redis_url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to use Redis at {host}: the bench talks to this machine only")
    redis.Redis.from_url(redis_url).flushdb()


def shop_create(*, customers: int, seed: int, now: datetime) -> dict:
    """Scored, consenting customers; an ad and a price offer in slot "home"; assignments and coupons minted."""
    from django.core.management import call_command
    from django.db import connection

    from behavior.models import Customer, Event, ModelVersion, Product, Score, Target
    from campaigns.models import Assignment, Campaign, Coupon
    from campaigns.services import campaign_create, campaigns_evaluate

    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(seed)
    Customer.objects.bulk_create(
        (Customer(external_id=f"cust-{i:06d}", attributes={"country": "DE"}, marketing_consent=True)
         for i in range(customers)), batch_size=5000)
    customer_ids = np.array(Customer.objects.order_by("pk").values_list("pk", flat=True))
    Product.objects.bulk_create(
        (Product(external_id=f"sku-{i:05d}", name=f"Product {i}", category=f"category-{i % 20}",
                 price=Decimal("19.90")) for i in range(500)), batch_size=5000)
    product_ids = np.array(Product.objects.order_by("pk").values_list("pk", flat=True))
    # A transparent scorer's version stands for the champion: the bench stores its scores itself.
    definition = Target.objects.get(name="purchase_intent").definition().as_dict()
    version = ModelVersion.objects.create(target="purchase_intent", kind=ModelVersion.Kind.RECENCY_FREQUENCY,
                                          definition=definition, params={"slope": 1.0, "intercept": 0.0},
                                          status=ModelVersion.Status.CHAMPION)
    intents = rng.beta(2, 2, size=customers)
    Score.objects.bulk_create(
        (Score(customer_id=int(c), target="purchase_intent", probability=float(p), model_version=version,
               scored_at=now) for c, p in zip(customer_ids, intents, strict=True)), batch_size=5000)
    # A few product views, so the ads' recommendations have products to pick (everyone else gets popular ones).
    viewers = rng.choice(customer_ids, size=customers * 2)
    viewed = rng.choice(product_ids, size=len(viewers), p=_zipf(len(product_ids)))
    ages = rng.uniform(0, 20 * 86400, size=len(viewers))
    Event.objects.bulk_create(
        (Event(event_id=_uuid(rng), customer_id=int(c), type="product_view", product_id=int(p),
               category=f"category-{int(p) % 20}", occurred_at=now - timedelta(seconds=float(a)), received_at=now)
         for c, p, a in zip(viewers, viewed, ages, strict=True)), batch_size=5000)
    campaign_create(
        name="bench: ten percent for likely buyers", kind="price_offer", status=Campaign.Status.ACTIVE,
        condition={"field": "score.purchase_intent", "op": "gte", "value": 0.5}, priority=10, slot=SLOT,
        holdout_percent=10, discount_kind="percent", discount_value=10, min_order=20,
        valid_days=7, budget=10_000_000)
    campaign_create(
        name="bench: picked for you", kind="ad", status=Campaign.Status.ACTIVE, headline="Picked for you",
        condition={"field": "score.purchase_intent", "op": "gte", "value": 0.2}, priority=5, slot=SLOT,
        holdout_percent=10, products_per_ad=4)
    started = time.perf_counter()
    outcomes = campaigns_evaluate(now=now - timedelta(hours=1))
    evaluate_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "customers": customers,
        "treated": {o.rule: o.reached for o in outcomes},
        "coupons": Coupon.objects.count(),
        "assignments": Assignment.objects.filter(group=Assignment.Group.TREATMENT).count(),
        "evaluate_seconds": round(evaluate_seconds, 2),
    }


def _zipf(n: int) -> np.ndarray:
    weights = 1 / np.arange(1, n + 1)
    return weights / weights.sum()


def _uuid(rng: np.random.Generator):
    import uuid

    return uuid.UUID(bytes=rng.bytes(16), version=4)


def coupons_of_shop() -> list[tuple[str, str]]:
    """(code, customer external id) of every coupon, in a fixed order."""
    from campaigns.models import Coupon

    return list(Coupon.objects.order_by("pk").values_list("code", "customer__external_id"))


# ---------------------------------------------------------------- gunicorn


# ---------------------------------------------------------------- the client


class Caller:
    """One client: a keep-alive connection (reopened when a sync worker closes it) and its API keys.

    `keys` maps a scope to the raw key, and "token_secret" to the ingest key's secret: a storefront's
    placements call carries the customer token the shop's server minted for that customer.
    """

    def __init__(self, port: int, keys: dict[str, str]):
        self.port = port
        self.keys = keys
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.tokens: dict[str, str] = {}  # a page keeps the token its customer's session got

    def call(self, call: Call) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.keys[call.scope]}"}
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        if call.customer is not None:
            if (token := self.tokens.get(call.customer)) is None:
                token = self.tokens[call.customer] = customer_token(secret=self.keys["token_secret"],
                                                                    customer_id=call.customer)
            headers[CUSTOMER_TOKEN_HEADER] = token
        for attempt in range(2):
            try:
                self.connection.request(call.method, call.path, body=call.body, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A sync worker closes after each response; a reused socket may find that out late.
                self.connection.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


class Call(NamedTuple):
    name: str
    method: str
    path: str
    scope: str
    body: bytes | None
    check: Callable[[int, bytes], str | None]  # (status, body) -> a problem, or None
    customer: str | None = None  # send this customer's token (a public key's customer-bound call)


def expect_200(status: int, body: bytes) -> str | None:
    return None if status == 200 else f"HTTP {status}: {body[:300]!r}"


def expect_404_json(status: int, body: bytes) -> str | None:
    return None if status == 404 and body.startswith(b"{") else f"HTTP {status}: {body[:300]!r}"


def expect_redeemed(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"HTTP {status}: {body[:300]!r}"
    return None if orjson.loads(body).get("discount") == "4.00" else f"unexpected discount: {body[:300]!r}"


def placements_call(customer: str) -> Call:
    return Call("placements", "GET", f"/api/v1/customers/{customer}/placements?slot={SLOT}", "ingest", None,
                expect_200, customer)


def first_views_of(customers: list[str], rng: random.Random) -> Callable[[], Call | None]:
    """A placements call for each customer once, in random order; then None."""
    order = iter(rng.sample(customers, len(customers)))
    return lambda: None if (customer := next(order, None)) is None else placements_call(customer)


def redeem_call(code: str, customer: str, order: int) -> Call:
    body = orjson.dumps({"customer": customer, "order_id": f"bench-{order}", "items": ITEMS})
    return Call("redeem", "POST", f"/api/v1/offers/{code}/redeem", "checkout", body, expect_redeemed)


def load(port: int, keys: list[dict[str, str]], next_call: Callable[[], Call | None], *, clients: int,
         seconds: float | None) -> tuple[dict[str, list[float]], int, list[str]]:
    """`clients` threads call as fast as answered until `seconds` pass or `next_call` returns None.

    Returns each endpoint's latencies (seconds), the number of calls, and the problems seen.
    """
    latencies: dict[str, list[float]] = {}
    problems: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds if seconds else float("inf")
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        caller = Caller(port, keys[index % len(keys)])
        mine: dict[str, list[float]] = {}
        bad: list[str] = []
        start.wait()
        try:
            while time.perf_counter() < deadline:
                with lock:
                    call = next_call()
                if call is None:
                    break
                began = time.perf_counter()
                try:
                    status, content = caller.call(call)
                except OSError as error:
                    status, content = 0, repr(error).encode()
                mine.setdefault(call.name, []).append(time.perf_counter() - began)
                if problem := call.check(status, content):
                    bad.append(f"{call.name} {call.path}: {problem}")
        finally:
            caller.close()
            with lock:
                for name, values in mine.items():
                    latencies.setdefault(name, []).extend(values)
                problems.extend(bad)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    return latencies, sum(map(len, latencies.values())), problems


def phase_http(run: Run, url: str, port: int, master: int, keys: list[dict[str, str]], name: str, label: str,
               next_call: Callable[[], Call | None], *, clients: int, seconds: float | None) -> Figure:
    figure = Figure(name, label, clients)
    with measured(figure, url, master):
        latencies, calls, problems = load(port, keys, next_call, clients=clients, seconds=seconds)
    figure.requests, figure.errors = calls, len(problems)
    figure.first_error = problems[0] if problems else ""
    everything = [v for values in latencies.values() for v in values]
    for key, value in percentiles(everything).items():
        setattr(figure, key, value)
    if len(latencies) > 1:
        figure.by_call = {n: {"requests": len(v), **percentiles(v)} for n, v in latencies.items()}
    run.figures.append(figure)
    print(f"  {label}: {figure.rate:,.0f} req/s, p50 {figure.p50_ms:.1f} ms, p95 {figure.p95_ms:.1f} ms,"
          f" errors {figure.errors}", file=sys.stderr)
    return figure


# ---------------------------------------------------------------- in-process baselines


def phase_in_process(run: Run, name: str, label: str, work: Callable[[int], None], count: int) -> Figure:
    """`work(i)` called `count` times in this process, one after the other: the service without HTTP."""
    figure = Figure(name, label, 1)
    samples = []
    for i in range(count):
        began = time.perf_counter()
        work(i)
        samples.append(time.perf_counter() - began)
    figure.requests, figure.seconds = count, sum(samples)
    for key, value in percentiles(samples).items():
        setattr(figure, key, value)
    run.figures.append(figure)
    return figure


def query_counts(customer: str, coupon: tuple[str, str]) -> dict[str, int]:
    """Queries one call makes, through Django's test client (the same views, middleware and DRF stack)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from behavior.services.api_keys import api_key_create

    made = {scope: api_key_create(name=f"bench queries {scope}", scopes=[scope]) for scope in ("ingest", "checkout")}
    keys = {scope: raw for scope, (_, raw) in made.items()}
    storefront = {"authorization": f"Bearer {keys['ingest']}",
                  CUSTOMER_TOKEN_HEADER.lower(): customer_token(secret=made["ingest"][0].token_secret,
                                                                customer_id=customer)}
    client = Client(HTTP_HOST="127.0.0.1")
    # A key's first call also stamps its last use (then once a minute): not counted, as in steady use.
    client.get(f"/api/v1/customers/{customer}/placements", {"slot": "none"}, headers=storefront)
    client.post("/api/v1/offers/NOTACODE2345/redeem", b"{}", content_type="application/json",
                headers={"authorization": f"Bearer {keys['checkout']}"})
    counts = {}
    for label, do in (
        ("placements", lambda: client.get(f"/api/v1/customers/{customer}/placements", {"slot": SLOT},
                                          headers=storefront)),
        ("redeem", lambda: client.post(f"/api/v1/offers/{coupon[0]}/redeem", orjson.dumps(
            {"customer": coupon[1], "order_id": "bench-queries", "items": ITEMS}), content_type="application/json",
            headers={"authorization": f"Bearer {keys['checkout']}"})),
    ):
        with CaptureQueriesContext(connection) as captured:
            response = do()
        if response.status_code != 200:
            raise BenchError(f"{label} through the test client: HTTP {response.status_code} {response.content[:300]}")
        counts[label] = len(captured.captured_queries)
        counts[f"{label}_sql"] = [q["sql"][:160] for q in captured.captured_queries]
    return counts


# ---------------------------------------------------------------- report


def report(run: Run) -> str:
    m = run.machine
    lines = [
        f"Foresight storefront API benchmark: {run.shop['customers']:,} customers, {run.shop['coupons']:,} coupons,"
        f" {run.shop['assignments']:,} live treatment assignments"
        f" (campaigns_evaluate {run.shop['evaluate_seconds']} s)",
        f"machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, load {m['load']} at start;"
        f" Python {m['python']}, Django {m['django']}, PostgreSQL {m['postgresql']}"
        f" (synchronous_commit {m['postgresql_settings']['synchronous_commit']}) on {run.database}",
        f"server: gunicorn config.wsgi, {run.workers} workers, "
        + ("sync (one request at a time each, no keep-alive)" if run.threads == 1
           else f"gthread with {run.threads} threads each (keep-alive)")
        + f", DEBUG off; throttle cache {run.cache}, rates {run.rate_limit}",
        "client: threads of this process, http.client (keeping the connection when the server does), closed loop"
        " (each client's next call when its last one answered), one API key per client and scope; placements"
        " calls carry a customer token minted with the client's ingest key",
        "",
        f"queries per call: placements {run.queries.get('placements')}, redeem {run.queries.get('redeem')}"
        " (Django test client, same stack, the API key's once-a-minute last-use stamp not counted)",
        "",
    ]
    width = max(len(f.label) for f in run.figures)
    lines.append(f"{'phase':<{width}} {'clients':>7} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
                 f" {'errors':>6}   CPU ms/req: {'app':>5} {'pg':>5} {'client':>6} {'other':>5}")
    for f in run.figures:
        cpu = f.cpu_ms_per_request()
        cells = " ".join(f"{cpu[k]:>{w}.2f}" if k in cpu else f"{'-':>{w}}"
                         for k, w in (("app", 5), ("pg", 5), ("client", 6), ("other", 5)))
        rate = f"{f.rate:>7,.0f}" if f.clients > 1 or f.name.startswith("one") else f"{'-':>7}"
        lines.append(f"{f.label:<{width}} {f.clients:>7} {rate} {f.p50_ms:>7.2f} {f.p95_ms:>7.2f} {f.p99_ms:>7.2f}"
                     f" {f.errors:>6}               {cells}")
        for call, stats in f.by_call.items():
            lines.append(f"{'  of which ' + call:<{width}} {'':>7} {stats['requests'] / f.seconds:>7,.0f}"
                         f" {stats['p50_ms']:>7.2f} {stats['p95_ms']:>7.2f} {stats['p99_ms']:>7.2f}")
    lines += ["", *goal_lines(run), "", *cpu_notes(run), *run.notes]
    errors = [f for f in run.figures if f.errors]
    for f in errors:
        lines.append(f"ERRORS in {f.label}: {f.errors}; first: {f.first_error}")
    busy = [f.label for f in run.figures if f.clients > 1 and f.other_cpu and f.seconds
            and f.other_cpu > 0.15 * f.seconds * (m["cores"] or 1)]
    if busy:
        lines.append(f"NOISY: other processes used more than 15% of the cores during {', '.join(busy)};"
                     " rerun on a quiet machine before trusting those figures.")
    return "\n".join(lines)


def goal_verdicts(run: Run) -> dict[str, dict]:
    """Placements and redeem against the floor of this run; empty without a floor."""
    floor = run.figure("floor")
    if floor is None or not floor.rate or not floor.p95_ms:
        return {}
    verdicts = {}
    for name in ("placements", "placements_first", "redeem"):
        f = run.figure(name)
        if f is None:
            continue
        share, ratio = f.rate / floor.rate, f.p95_ms / floor.p95_ms
        verdicts[name] = {"rate_share": share, "p95_ratio": ratio, "errors": f.errors,
                          "met": share >= GOAL_RATE_SHARE and ratio <= GOAL_P95_RATIO and not f.errors}
    return verdicts


def goal_lines(run: Run) -> list[str]:
    floor = run.figure("floor")
    lines = [f"goal: with {run.clients} clients, at least {GOAL_RATE_SHARE:.0%} of the JSON-404 floor's throughput"
             f" and a p95 at most {GOAL_P95_RATIO:g}x the floor's, in this run"]
    verdicts = goal_verdicts(run)
    if not verdicts:
        lines.append("  not judged: the run needs the floor phase and placements or redeem")
    for name, v in verdicts.items():
        f = run.figure(name)
        assert f is not None and floor is not None
        status = "met" if v["met"] else "missed" + (f" ({f.errors:,} errors)" if f.errors else "")
        lines.append(f"  {name:<16} {f.rate:,.0f} req/s = {v['rate_share']:.0%} of the floor's {floor.rate:,.0f};"
                     f" p95 {f.p95_ms:.1f} ms = {v['p95_ratio']:.1f}x the floor's {floor.p95_ms:.1f} ms: {status}")
    if line := sweep_line(run):
        lines.append(line)
    return lines


def cpu_notes(run: Run) -> list[str]:
    """Is the machine the limit, and is the client a large part of it?"""
    cores = run.machine.get("cores") or 1
    lines = []
    for name in ("placements", "placements_first", "redeem", "floor"):
        f = run.figure(name)
        if not f or not f.seconds:
            continue
        used = {k: (v or 0.0) / f.seconds / cores for k, v in
                (("app", f.app_cpu), ("pg", f.postgres_cpu), ("client", f.client_cpu), ("other", f.other_cpu))}
        lines.append(f"{name}: the cores were {sum(used.values()):.0%} busy: gunicorn {used['app']:.0%},"
                     f" PostgreSQL {used['pg']:.0%}, this client {used['client']:.0%}, everything else"
                     f" {used['other']:.0%}")
    return lines


def sweep_line(run: Run) -> str | None:
    points = [f for f in (run.figure("one_placements"), *(run.figure(f"sweep_{n}") for n in SWEEP),
                          run.figure("placements")) if f]
    if len(points) < 2:
        return None
    cells = ", ".join(f"{f.clients}: {f.p95_ms:.0f} ms at {f.rate:,.0f} req/s" for f in points)
    return f"  placements p95 by clients (closed loop): {cells}"


def save(run: Run) -> Path:
    folder = ROOT / "bench" / "results"
    folder.mkdir(exist_ok=True)
    path = folder / f"api-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    data = asdict(run)
    data["goal"] = goal_verdicts(run)
    for figure, item in zip(run.figures, data["figures"], strict=True):
        item["requests_per_second"] = figure.rate
        item["cpu_ms_per_request"] = figure.cpu_ms_per_request()
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=50, help="concurrent client threads (default 50)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per worker: 1 = sync workers (default), more = gthread")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each timed loaded phase (default 12)")
    parser.add_argument("--redeems", type=int, default=3_000, help="coupons redeemed in the redeem phase")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help="a PostgreSQL database on this machine; dropped and recreated")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis for the throttle counts (emptied at the start); '' for per-process memory")
    ceiling = f"{CLIENT_CEILING_PER_MINUTE}/min"
    parser.add_argument("--rate", default=ceiling, help=f"API_RATE_PER_KEY for the server (default {ceiling}: more"
                        " than one client sends; each client has its own server keys)")
    parser.add_argument("--rate-per-address", default=ceiling, help="API_RATE_PER_ADDRESS (default"
                        f" {ceiling}: all clients call from 127.0.0.1, each with its own public key)")
    parser.add_argument("--rate-per-customer", default="120/min", help="API_RATE_PER_CUSTOMER (default the"
                        " shop's 120/min: the clients pick among all customers at random)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", action="append", default=[],
                        help="run only these phases (repeatable): floor, customer, placements, redeem, mixed, one,"
                        " sweep")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/api-*.json")
    args = parser.parse_args(argv)

    url = args.database_url
    run = Run(customers=args.customers, clients=args.clients, workers=args.workers, threads=args.threads,
              seconds=args.seconds, database=redacted(url), cache=redacted_redis(args.redis_url),
              rate_limit=", ".join(f"{v} {k.removeprefix('API_RATE_').lower().replace('_', ' ')}"
                                   for k, v in rates_of(args).items()))
    print("creating and migrating the bench database ...", file=sys.stderr)
    server = database_recreate(url)
    redis_reset(args.redis_url)
    django_setup(url, args.redis_url)
    run.machine = machine_facts(server)
    now = datetime.now(UTC)
    print(f"creating {args.customers:,} customers, scores, campaigns, assignments and coupons ...", file=sys.stderr)
    run.shop = shop_create(customers=args.customers, seed=args.seed, now=now)

    from behavior.services.api_keys import api_key_create
    from campaigns.placements_cache import placements_changed
    from campaigns.services import OrderItem, coupon_redeem, placements_show

    rng = random.Random(args.seed)
    customers = [f"cust-{i:06d}" for i in range(args.customers)]
    coupons = coupons_of_shop()
    rng.shuffle(coupons)
    # Each coupon is redeemed once: the phases take disjoint slices.
    reserve = {"queries": 1, "in_process": 300, "one": 300, "mixed": 4 * args.clients * int(args.seconds) + 500}
    needed = sum(reserve.values()) + args.redeems + 200  # 200 for the warm-up
    if len(coupons) < needed:
        raise SystemExit(f"{len(coupons):,} coupons minted, the phases need {needed:,}: raise --customers")
    pool = iter(coupons)

    def take(n: int) -> list[tuple[str, str]]:
        return list(itertools.islice(pool, n))

    run.queries = query_counts(rng.choice(customers), take(1)[0])

    def random_placements() -> Call:
        return placements_call(rng.choice(customers))

    def redeem_from(batch: list[tuple[str, str]]) -> Callable[[], Call | None]:
        items = iter(enumerate(batch))

        def next_call() -> Call | None:
            order, pair = next(items, (None, None))
            return None if pair is None else redeem_call(pair[0], pair[1], order)
        return next_call

    def mixed_from(batch: list[tuple[str, str]]) -> Callable[[], Call | None]:
        redeems = redeem_from(batch)

        def next_call() -> Call | None:
            if rng.random() < MIXED_REDEEM_SHARE and (call := redeems()):
                return call
            return random_placements()
        return next_call

    in_process_coupons = take(reserve["in_process"])
    one_coupons = take(reserve["one"])
    mixed_coupons = take(reserve["mixed"])
    warm_coupons = take(200)
    redeem_coupons = take(args.redeems)

    # In-process: the service functions alone, as the views call them.
    print("in-process baselines ...", file=sys.stderr)

    def show(i: int) -> None:
        placements_show(customer_external_id=customers[(i * 7919) % len(customers)], slot=SLOT)

    def redeem(i: int) -> None:
        code, customer = in_process_coupons[i]
        coupon_redeem(code=code, customer_external_id=customer, order_id=f"bench-in-process-{i}",
                      items=[OrderItem(product=ITEMS[0]["product"], category=ITEMS[0]["category"],
                                       price=Decimal(ITEMS[0]["price"]), quantity=1)])

    phase_in_process(run, "in_process_placements", "placements_show, in-process", show, 50)  # warm
    run.figures.pop()
    phase_in_process(run, "in_process_placements", "placements_show, in-process", show, 1000)
    phase_in_process(run, "in_process_redeem", "coupon_redeem, in-process", redeem, len(in_process_coupons))

    # One key per client and scope, so that no key carries more than one client's load (rates_of).
    keys = []
    for i in range(args.clients):
        made = {scope: api_key_create(name=f"bench {scope} {i}", scopes=[scope])
                for scope in ("ingest", "checkout", "read")}
        secret = made["ingest"][0].token_secret
        keys.append({**{scope: raw for scope, (_, raw) in made.items()}, "token_secret": secret})

    def floor_call() -> Call:
        return Call("not found", "GET", "/api/v1/no-such-endpoint", "ingest", None, expect_404_json)

    def customer_call() -> Call:
        return Call("customer", "GET", f"/api/v1/customers/{rng.choice(customers)}", "read", None, expect_200)

    wanted = set(args.only) or {"floor", "customer", "placements", "redeem", "mixed", "one", "sweep"}
    seconds = args.seconds
    env = django_env(url, args.redis_url, rates_of(args))
    with tempfile.TemporaryDirectory(prefix="foresight-bench-api-") as folder, \
            gunicorn(env, args.workers, args.threads, Path(folder) / "gunicorn.log") as (port, master):
        log = Path(folder) / "gunicorn.log"
        try:
            print(f"warming {args.workers} workers ...", file=sys.stderr)
            warm = redeem_from(warm_coupons)
            for next_call in (random_placements, customer_call, floor_call):
                load(port, keys, next_call, clients=args.clients, seconds=1.0)
            load(port, keys, warm, clients=args.clients, seconds=None)
            print("timed phases ...", file=sys.stderr)
            http = lambda *a, **kw: phase_http(run, url, port, master, keys, *a, **kw)  # noqa: E731
            if "one" in wanted:
                http("one_floor", "unknown /api/v1/ path (JSON 404), 1 client", floor_call, clients=1, seconds=3)
                http("one_customer", "GET customer (auth, throttle, 1 query), 1 client", customer_call, clients=1,
                     seconds=3)
                http("one_placements", "placements, 1 client", random_placements, clients=1, seconds=4)
                http("one_redeem", "redeem, 1 client", redeem_from(one_coupons), clients=1, seconds=None)
            if "floor" in wanted:
                http("floor", "unknown /api/v1/ path (JSON 404)", floor_call, clients=args.clients,
                     seconds=seconds / 2)
            if "customer" in wanted:
                http("customer", "GET customer (auth, throttle, 1 query)", customer_call, clients=args.clients,
                     seconds=seconds / 2)
            if "placements" in wanted:
                # Each customer's first view after a change reads PostgreSQL and keeps the answer in Redis; a
                # shopper's later views until the next change are served from there. Both are measured: first
                # views, then (once every customer was seen) views of customers drawn at random.
                placements_changed()
                first_views = first_views_of(customers, rng)
                http("placements_first", "placements, first view since a change", first_views,
                     clients=args.clients, seconds=seconds)
                load(port, keys, first_views, clients=args.clients, seconds=None)  # everyone else's first view
                http("placements", "placements, a view after the first", random_placements, clients=args.clients,
                     seconds=seconds)
            if "redeem" in wanted:
                http("redeem", f"redeem ({args.redeems:,} coupons, each once)", redeem_from(redeem_coupons),
                     clients=args.clients, seconds=None)
            if "sweep" in wanted:
                for n in SWEEP:
                    http(f"sweep_{n}", f"placements, {n} clients", random_placements, clients=n, seconds=3)
            if "mixed" in wanted:
                http("mixed", f"mixed ({1 - MIXED_REDEEM_SHARE:.0%} placements, {MIXED_REDEEM_SHARE:.0%} redeem)",
                     mixed_from(mixed_coupons), clients=args.clients, seconds=seconds)
        except BenchError:
            print(log.read_text()[-3000:], file=sys.stderr)
            raise
    print()
    print(report(run))
    if not args.no_save:
        print(f"\nsaved {save(run).relative_to(ROOT)}")
    return 1 if any(f.errors for f in run.figures) else 0


def redacted_redis(redis_url: str) -> str:
    if not redis_url:
        return "per-process memory (LocMemCache)"
    parts = urlsplit(redis_url)
    return f"Redis {parts.hostname}:{parts.port or 6379}{parts.path}"


if __name__ == "__main__":
    sys.exit(main())
