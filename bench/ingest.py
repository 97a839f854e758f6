"""Event ingestion benchmark: the batch API over HTTP and the CSV import against two baselines.

    .venv/bin/python bench/ingest.py [--events N] [--database-url URL]

Every phase stores the same generated events into the same starting state (customers and
products present, events table truncated), and each figure is printed beside the baseline
measured in the same run, so the ratios hold on any machine. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import psycopg
import requests
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path

from behavior.core.event_types import EVENT_TYPES, ORDERS  # noqa: E402  (plain module, no Django needed)
from bench._common import machine_facts, number, redacted  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/foresight_bench"
BATCH = 1000
EVENTS_TABLE = "behavior_event"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Goals from the design: (label, figure name, comparison figure or None, threshold).
GOALS = (
    ("API / bulk_create", "api", "bulk_create", 0.75),
    ("API absolute (events/s)", "api", None, 15_000),
    ("import / raw COPY", "import", "copy", 0.50),
    ("import absolute (events/s)", "import", None, 100_000),
)

# A shop's mix of event types (shares of all events).
TYPE_SHARES = {
    "page_view": 0.281, "product_view": 0.30, "search": 0.08, "add_to_wishlist": 0.02,
    "add_to_cart": 0.10, "remove_from_cart": 0.03, "checkout_start": 0.04, "purchase": 0.04,
    "order_approved": 0.025, "order_shipped": 0.025, "order_delivered": 0.025, "delivery_delayed": 0.004,
    "payment_failed": 0.005,
    "return_requested": 0.004, "refund": 0.003, "review": 0.01, "support_contact": 0.008,
}
assert set(TYPE_SHARES) == set(EVENT_TYPES), "every event type needs a share"
WITH_PRODUCT = {"product_view", "add_to_wishlist", "add_to_cart", "remove_from_cart", "purchase",
                "return_requested", "review"}
WITH_PRICE = {"product_view", "add_to_cart", "remove_from_cart", "purchase"}
WITH_QUANTITY = {"add_to_cart", "remove_from_cart", "purchase"}
WITH_PROMISE = {"purchase", "order_shipped"}
CATEGORIES = ["shoes", "shirts", "trousers", "dresses", "jackets", "bags", "watches", "jewellery", "phones",
              "laptops", "tablets", "headphones", "cameras", "tv", "kitchen", "bedding", "furniture", "garden",
              "tools", "toys", "books", "games", "sports", "outdoor", "beauty", "health", "baby", "pets",
              "food", "drinks", "office", "auto", "music", "art", "lighting", "bath", "cleaning", "storage"]
SEARCHES = ["running shoes", "red dress", "usb-c charger", "gift for dad", "coffee grinder", "winter jacket",
            "lego", "yoga mat", "desk lamp", "wireless earbuds"]


class BenchError(Exception):
    """A phase did not store what it was given, a call failed, or the server did not come up."""


@dataclass
class Figure:
    name: str
    label: str
    events: int = 0
    seconds: float = 0.0
    app_cpu: float | None = None  # the process doing Django's work (gunicorn workers or this process)
    postgres_cpu: float | None = None
    client_cpu: float | None = None  # the HTTP client (this process), API only
    other_cpu: float | None = None  # the rest of the machine during the phase
    skipped: str = ""
    note: str = ""
    rates: list[float] = field(default_factory=list)  # of every try, with --repeat

    @property
    def rate(self) -> float | None:
        return self.events / self.seconds if self.seconds and not self.skipped else None


@dataclass
class Run:
    events: int
    customers: int
    products: int
    seed: int
    workers: int
    clients: int
    repeat: int
    database: str
    machine: dict = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    body_kib: int = 0  # mean size of an API request body
    # The first phase's digests of the stored events: of the columns all phases store, and of all columns.
    fingerprints: dict[str, tuple[str, str]] = field(default_factory=dict)

    def check_stored(self, url: str, phase: str, *, full: bool) -> None:
        """Every phase must store all the events, with the same values as the phases before it.

        `full` phases store every column; the import leaves some out (see IMPORT_OPTIONAL).
        """
        stored, digests = events_fingerprint(url)
        if stored != self.events:
            raise BenchError(f"{phase}: {stored:,} events in the table, expected {self.events:,}")
        for kind in ("shared", "full") if full else ("shared",):
            first_phase, first_digest = self.fingerprints.setdefault(kind, (phase, digests[kind]))
            if digests[kind] != first_digest:
                raise BenchError(f"{phase} stored other values than {first_phase} did ({kind} columns)")

    def rate(self, name: str) -> float | None:
        return next((f.rate for f in self.figures if f.name == name), None)


# ---------------------------------------------------------------- generating the events


def events_generate(n: int, *, customers: int, products: pd.DataFrame, seed: int, now: datetime) -> pd.DataFrame:
    """Sessions of events of skewed customers over the last ~300 days, in the columns `clean_events` returns."""
    rng = np.random.default_rng(seed)
    lengths = rng.geometric(1 / 6, size=n)
    lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), n)) + 1]
    sessions = len(lengths)
    session = np.repeat(np.arange(sessions), lengths)[:n]
    starts = np.r_[0, np.cumsum(lengths)[:-1]]

    # A few customers are very active, most visit rarely; activity is not ordered by id.
    weights = 1 / np.arange(1, customers + 1) ** 0.7
    session_customer = rng.permutation(customers)[rng.choice(customers, size=sessions, p=weights / weights.sum())]
    span = timedelta(days=300).total_seconds()
    session_start = rng.uniform(0, span, size=sessions)
    gaps = rng.exponential(40.0, size=n)
    gaps[starts] = 0
    elapsed = np.cumsum(gaps)
    offset = session_start[session] + (elapsed - elapsed[starts][session])
    first = pd.Timestamp(now) - pd.Timedelta(days=301)
    occurred = (first + pd.to_timedelta(np.round(offset * 1e6).astype("int64"), unit="us")).as_unit("us")

    names = np.array(list(TYPE_SHARES))
    shares = np.array(list(TYPE_SHARES.values()))
    types = names[rng.choice(len(names), size=n, p=shares / shares.sum())]

    popularity = 1 / np.arange(1, len(products) + 1)
    product_index = rng.choice(len(products), size=n, p=popularity / popularity.sum())
    has_product = np.isin(types, list(WITH_PRODUCT))
    product = np.where(has_product, products["external_id"].to_numpy()[product_index], None)
    category = np.where(has_product, products["category"].to_numpy()[product_index], None)
    on_page = types == "page_view"
    category = np.where(on_page, np.array(CATEGORIES)[rng.integers(len(CATEGORIES), size=n)], category)
    price = np.where(np.isin(types, list(WITH_PRICE)), products["price"].to_numpy()[product_index], np.nan)
    quantity = pd.array(np.where(np.isin(types, list(WITH_QUANTITY)), rng.geometric(0.7, size=n), 0), "Int64")
    quantity[quantity == 0] = pd.NA
    rating = pd.array(rng.choice([1, 2, 3, 4, 5], size=n, p=[0.06, 0.05, 0.1, 0.29, 0.5]), "Int64")
    rating[types != "review"] = pd.NA
    is_order = np.isin(types, list(ORDERS))
    order_id = np.where(is_order, np.char.add("o-", session.astype(str)), None)
    promised = occurred + pd.to_timedelta(rng.integers(2, 8, size=n), unit="D")
    promised = promised.where(np.isin(types, list(WITH_PROMISE)))

    session_key = rng.integers(0, 2**63, size=sessions)
    return pd.DataFrame({
        "event_id": [str(uuid.UUID(bytes=b, version=4)) for b in _chunks(rng.bytes(16 * n), 16)],
        "type": types,
        "customer": np.char.add("cust-", np.char.zfill(session_customer[session].astype(str), 6)),
        "anonymous_id": None,
        "product": product,
        "category": category,
        "order_id": order_id,
        "session_id": [f"s-{session_key[s]:016x}" for s in session],
        "price": price,
        "quantity": quantity,
        "rating": rating,
        "occurred_at": occurred,
        "promised_at": promised,
        "properties": _properties(rng, types, category),
    })


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def _properties(rng: np.random.Generator, types: np.ndarray, category: np.ndarray) -> list[dict | None]:
    referrers = ["google", "newsletter", "instagram", "direct", "partner"]
    draws = rng.integers(0, 1000, size=len(types))
    out: list[dict | None] = []
    for kind, cat, draw in zip(types, category, draws, strict=True):
        if kind == "page_view":
            out.append({"path": f"/c/{cat}", "referrer": referrers[draw % 5]})
        elif kind == "search":
            out.append({"query": SEARCHES[draw % 10], "results": int(draw)})
        elif kind == "product_view" and draw < 400:
            out.append({"list": "recommended", "position": int(draw % 24)})
        elif kind == "purchase":
            out.append({"payment": ["card", "paypal", "invoice"][draw % 3], "coupon": bool(draw < 100)})
        elif kind == "support_contact":
            out.append({"channel": ["email", "chat", "phone"][draw % 3], "topic": ["delivery", "refund"][draw % 2]})
        else:
            out.append(None)
    return out


def products_generate(count: int, *, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 1)
    return pd.DataFrame({
        "external_id": [f"sku-{i:05d}" for i in range(count)],
        "category": np.array(CATEGORIES)[rng.integers(len(CATEGORIES), size=count)],
        "price": np.round(rng.lognormal(3.3, 0.9, size=count), 2),
    })


def api_bodies(events: pd.DataFrame) -> list[bytes]:
    """Batches of 1,000 as a storefront sends them: JSON, absent fields left out, ISO times in UTC."""
    records = events.astype(object).where(events.notna(), None)
    for name in ("occurred_at", "promised_at"):
        records[name] = events[name].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype(object).where(events[name].notna())
    for name in ("quantity", "rating"):
        records[name] = [None if pd.isna(v) else int(v) for v in events[name]]
    items = [{k: v for k, v in r.items() if v is not None} for r in records.to_dict("records")]
    return [orjson.dumps(items[i : i + BATCH]) for i in range(0, len(items), BATCH)]


# ---------------------------------------------------------------- the database


def database_recreate(url: str) -> dict:
    """Drop and create the bench database so every run starts alike; return the server's facts."""
    info = conninfo_to_dict(url)
    host, name = info.get("host", ""), info.get("dbname", "")
    if host and not host.startswith("/") and host not in LOOPBACK:
        raise SystemExit(f"refusing to run against {host}: the bench talks to this machine only")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop database {name!r}: its name must contain 'bench'")
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        facts = {
            setting: connection.execute(f"SHOW {setting}").fetchone()[0]
            for setting in ("server_version", "shared_buffers", "synchronous_commit", "max_wal_size")
        }
    return facts


def django_setup(url: str) -> None:
    os.environ.update(_django_env(url))
    import django

    django.setup()


def _django_env(url: str) -> dict[str, str]:
    # local.py turns DEBUG on by default; DEBUG keeps every query in memory and is not how anyone serves.
    return {"DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": url, "DJANGO_DEBUG": "0"}


def shop_create(*, customers: int, products: pd.DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    """Customers and products the events refer to; return their ids by external id."""
    from django.core.management import call_command
    from django.db import connection

    from behavior.models import Customer, Product

    call_command("migrate", verbosity=0)
    countries = ["DE", "FR", "NL", "PL", "ES", "IT", "SE", "AT"]
    Customer.objects.bulk_create(
        (Customer(external_id=f"cust-{i:06d}", attributes={"country": countries[i % 8]}, marketing_consent=i % 3 == 0)
         for i in range(customers)),
        batch_size=5000,
    )
    Product.objects.bulk_create(
        (Product(external_id=r.external_id, name=f"Product {r.external_id}", category=r.category,
                 price=Decimal(str(r.price))) for r in products.itertuples()),
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return (dict(Customer.objects.values_list("external_id", "id")),
            dict(Product.objects.values_list("external_id", "id")))


def events_reset(url: str) -> None:
    """Empty the events table and flush dirty pages, so no phase pays for the one before."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {EVENTS_TABLE}")
        connection.execute("CHECKPOINT")


# The columns every phase stores (the import derives its own event ids and has no promised_at or properties).
SHARED_COLUMNS = ("customer_id", "type", "product_id", "category", "price", "quantity", "order_id", "session_id",
                  "rating", "occurred_at")
FULL_COLUMNS = (*SHARED_COLUMNS, "event_id", "anonymous_id", "promised_at", "properties")


def events_fingerprint(url: str) -> tuple[int, dict[str, str]]:
    """How many events are stored, and digests of their values, to show each phase stored the same rows."""
    def digest(columns: tuple[str, ...]) -> str:
        names = ", ".join(columns)
        return f"md5(string_agg(row({names})::text, '|' ORDER BY {names}))"

    with psycopg.connect(url) as connection:
        count, shared, full = connection.execute(
            f"SELECT count(*), {digest(SHARED_COLUMNS)}, {digest(FULL_COLUMNS)} FROM {EVENTS_TABLE}"
        ).fetchone()
    return count, {"shared": shared, "full": full}


# ---------------------------------------------------------------- measuring CPU (Linux /proc)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # ended: its time is lost, like any process that exits during a phase
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _machine_busy() -> float:
    """CPU seconds all cores spent on anything since boot."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _family(pid: int) -> set[int]:
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.add(int(stat.parent.name))
    return {pid, *children}


def _backends(monitor: psycopg.Connection) -> set[int]:
    """The PostgreSQL processes working for the bench database (other databases on the server are not ours)."""
    rows = monitor.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchall()
    return {pid for (pid,) in rows}


@contextlib.contextmanager
def measured(figure: Figure, url: str, server_pid: int | None = None) -> Iterator[None]:
    """Time a phase and charge its CPU to the app, the bench database's backends, the client and everything else.

    The app is the gunicorn master and workers when `server_pid` is given (the bench process is then the
    HTTP client), else the bench process. "Other" is what the rest of the machine used meanwhile: PostgreSQL's
    shared background processes, and whatever else runs here; when it is large, the figures are noisy.
    """
    with psycopg.connect(url, autocommit=True) as monitor:
        app = _family(server_pid) if server_pid else set()
        backends = _backends(monitor)
        before = {pid: _cpu_seconds(pid) for pid in app | backends}
        own_before, busy_before = time.process_time(), _machine_busy()
        start = time.perf_counter()
        yield
        figure.seconds = time.perf_counter() - start
        own, busy = time.process_time() - own_before, _machine_busy() - busy_before
        app |= _family(server_pid) if server_pid else set()
        backends |= _backends(monitor)

    def used(pids: set[int]) -> float:
        return sum(max(0.0, _cpu_seconds(pid) - before.get(pid, 0.0)) for pid in pids)

    figure.postgres_cpu = used(backends)
    if server_pid:
        figure.app_cpu, figure.client_cpu = used(app), own
    else:
        figure.app_cpu = own
    figure.other_cpu = max(0.0, busy - figure.app_cpu - figure.postgres_cpu - (figure.client_cpu or 0.0))


# ---------------------------------------------------------------- phase 1: the batch API over HTTP


@contextlib.contextmanager
def gunicorn(env: dict, workers: int, threads: int, log: Path) -> Iterator[tuple[int, int]]:
    """gunicorn on a free loopback port: sync workers when threads is 1, else gthread; yields (port, pid)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The project's gunicorn settings, as deployed (they are found from the project folder).
    command = [sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn", "config.wsgi:application",
               "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "120", "--log-level", "warning",
               "--chdir", str(ROOT), "--backlog", "2048"]
    if threads > 1:
        command += ["--worker-class", "gthread", "--threads", str(threads)]
    with log.open("wb") as output:
        server = subprocess.Popen(command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT,
                                  cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise BenchError(f"gunicorn exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise BenchError("gunicorn did not listen within 60 s")
            time.sleep(0.2)
        yield port, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class EventsClient:
    """Posts pre-serialized batches to the events endpoint, one HTTP session per thread."""

    def __init__(self, base: str, raw_key: str):
        self.url = f"{base}/api/v1/events"
        self.headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
        self.local = threading.local()
        self.sessions: list[requests.Session] = []

    def send(self, body: bytes, size: int) -> str | None:
        """Post one batch; return what went wrong, or None when all `size` events were accepted."""
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.sessions.append(self.local.session)
        response = self.local.session.post(self.url, data=body, headers=self.headers, timeout=120)
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:500]}"
        report = orjson.loads(response.content)
        if len(report["accepted"]) != size or report["duplicates"] or report["rejected"]:
            return (f"accepted {len(report['accepted'])} of {size}, duplicates {len(report['duplicates'])},"
                    f" rejected {report['rejected'][:3]}")
        return None

    def close(self) -> None:
        for session in self.sessions:
            session.close()


def phase_api(run: Run, events: pd.DataFrame, url: str, workdir: Path) -> Figure:
    from behavior.services.api_keys import api_key_create

    figure = Figure("api", "1 batch API over HTTP")
    bodies = api_bodies(events)
    sizes = [min(BATCH, len(events) - i) for i in range(0, len(events), BATCH)]
    run.body_kib = round(sum(map(len, bodies)) / len(bodies) / 1024)
    _key, raw_key = api_key_create(name="bench", scopes=["ingest"])
    log = workdir / "gunicorn.log"
    problems: list[str] = []
    with gunicorn(_django_env(url), run.workers, 1, log) as (port, master), ThreadPoolExecutor(run.clients) as pool:
        base = f"http://127.0.0.1:{port}"
        client = EventsClient(base, raw_key)
        # Warm the workers (lazy imports, first connection, first plans) on other events, then start clean.
        warmup = events_generate(4 * BATCH * run.workers, customers=run.customers, products=_products(run),
                                 seed=run.seed + 99, now=datetime.now(UTC))
        warmup_bodies = api_bodies(warmup)
        problems = [p for p in pool.map(client.send, warmup_bodies, [BATCH] * len(warmup_bodies)) if p]
        if problems:
            raise BenchError(f"API warm-up failed: {problems[0]}\ngunicorn log:\n{log.read_text()[-3000:]}")
        events_reset(url)

        with measured(figure, url, master):
            futures = {pool.submit(client.send, body, size): size for body, size in zip(bodies, sizes, strict=True)}
            with tqdm(total=len(events), desc="API", unit="ev", unit_scale=True, leave=False) as progress:
                for future in as_completed(futures):
                    if problem := future.result():
                        problems.append(problem)
                    progress.update(futures[future])
        client.close()
    if problems:
        raise BenchError(f"API: {len(problems)} of {len(bodies)} batches failed; first: {problems[0]}")
    figure.events = len(events)
    run.check_stored(url, "API", full=True)
    return figure


def _products(run: Run) -> pd.DataFrame:
    return products_generate(run.products, seed=run.seed)


# ---------------------------------------------------------------- phase 2: Django bulk_create


def phase_bulk_create(run: Run, events: pd.DataFrame, url: str, customer_ids: dict, product_ids: dict) -> Figure:
    from django.db import transaction

    from behavior.models import Event

    figure = Figure("bulk_create", "2 Django bulk_create, 1 process")
    received = datetime.now(UTC)
    rows = [
        {
            "event_id": uuid.UUID(r["event_id"]),
            "customer_id": customer_ids[r["customer"]],
            "type": r["type"],
            "product_id": product_ids.get(r["product"]),
            "category": r["category"] or "",
            "price": None if r["price"] is None else Decimal(str(r["price"])),
            "quantity": None if r["quantity"] is None else int(r["quantity"]),
            "rating": None if r["rating"] is None else int(r["rating"]),
            "order_id": r["order_id"] or "",
            "session_id": r["session_id"],
            "occurred_at": r["occurred_at"].to_pydatetime(),
            "promised_at": None if r["promised_at"] is None else r["promised_at"].to_pydatetime(),
            "received_at": received,
            "properties": r["properties"],
        }
        for r in events.astype(object).where(events.notna(), None).to_dict("records")
    ]
    with measured(figure, url):
        for start in tqdm(range(0, len(rows), BATCH), desc="bulk_create", unit="batch", leave=False):
            with transaction.atomic():
                Event.objects.bulk_create([Event(**row) for row in rows[start : start + BATCH]])
    figure.events = len(rows)
    run.check_stored(url, "bulk_create", full=True)
    return figure


# ---------------------------------------------------------------- phase 3: raw COPY


COPY_COLUMNS = ("event_id", "customer_id", "anonymous_id", "type", "product_id", "category", "price", "quantity",
                "order_id", "session_id", "rating", "promised_at", "occurred_at", "received_at", "properties")


def phase_copy(run: Run, events: pd.DataFrame, url: str, customer_ids: dict, product_ids: dict) -> Figure:
    figure = Figure("copy", "3 raw COPY with psycopg")
    rows = pd.DataFrame({
        "event_id": events["event_id"],
        "customer_id": events["customer"].map(customer_ids),
        "anonymous_id": "",
        "type": events["type"],
        "product_id": events["product"].map(product_ids).astype("Int64"),
        "category": events["category"].fillna(""),
        "price": events["price"],
        "quantity": events["quantity"],
        "order_id": events["order_id"].fillna(""),
        "session_id": events["session_id"],
        "rating": events["rating"],
        "promised_at": events["promised_at"],
        "occurred_at": events["occurred_at"],
        "received_at": pd.Timestamp.now(tz="UTC"),
        "properties": [None if p is None else orjson.dumps(p).decode() for p in events["properties"]],
    })
    # CSV: empty fields are NULL, except in the text columns FORCE_NOT_NULL names, where they are "".
    buffer = io.StringIO()
    rows.to_csv(buffer, header=False, index=False, date_format="%Y-%m-%d %H:%M:%S.%f+00")
    data = buffer.getvalue().encode()
    chunk = 1 << 20
    statement = (f"COPY {EVENTS_TABLE} ({', '.join(COPY_COLUMNS)}) FROM STDIN WITH (FORMAT csv,"
                 " FORCE_NOT_NULL (anonymous_id, category, order_id))")
    with psycopg.connect(url) as connection, measured(figure, url):
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for start in tqdm(range(0, len(data), chunk), desc="COPY", unit="MB", leave=False):
                copy.write(data[start : start + chunk])
        connection.commit()
    figure.events = len(rows)
    run.check_stored(url, "raw COPY", full=True)
    return figure


# ---------------------------------------------------------------- phase 4: the import command


# Our CSV column for each flag of `import_events --format mapped`; optional flags are used when the command has them.
IMPORT_COLUMNS = {"--customer": "customer", "--time": "occurred_at", "--type": "type", "--product": "product",
                  "--category": "category", "--price": "price", "--quantity": "quantity", "--order-id": "order_id",
                  "--session": "session_id"}
IMPORT_OPTIONAL = {"--event-id": "event_id", "--rating": "rating", "--promised-at": "promised_at",
                   "--properties": "properties"}
# Microseconds keep rows distinct: the command derives event ids from a row's content.
IMPORT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def import_parser():
    """The command's argument parser, or None when the command does not exist (yet)."""
    from django.core.management import get_commands, load_command_class

    app = get_commands().get("import_events")
    if app is None:
        return None
    return load_command_class(app, "import_events").create_parser("manage.py", "import_events")


def import_arguments(parser, path: Path) -> tuple[list[str], list[str]]:
    """Arguments for a mapped import of `path`, and the columns the command cannot take."""
    actions = parser._actions
    options = {option for action in actions for option in action.option_strings}
    fmt = next((a for a in actions if "--format" in a.option_strings), None)
    if fmt is None or (fmt.choices and "mapped" not in fmt.choices):
        raise BenchError("import_events has no --format mapped")
    missing = [flag for flag in [*IMPORT_COLUMNS, "--time-format"] if flag not in options]
    if missing:
        raise BenchError(f"import_events lacks {', '.join(missing)}")
    arguments = ["--format", "mapped", "--time-format", IMPORT_TIME_FORMAT]
    for flag, column in {**IMPORT_COLUMNS, **IMPORT_OPTIONAL}.items():
        if flag in options:
            arguments += [flag, column]
    if any(not a.option_strings for a in actions):
        arguments.insert(0, str(path))
    elif "--file" in options or "--path" in options:
        arguments += ["--file" if "--file" in options else "--path", str(path)]
    else:
        raise BenchError("import_events takes no file argument the bench knows")
    unused = [column for flag, column in IMPORT_OPTIONAL.items() if flag not in options]
    return arguments, unused


def import_csv(events: pd.DataFrame, path: Path) -> None:
    frame = events.drop(columns=["anonymous_id"]).copy()
    for name in ("occurred_at", "promised_at"):
        frame[name] = frame[name].dt.strftime(IMPORT_TIME_FORMAT)
    frame["properties"] = [None if p is None else orjson.dumps(p).decode() for p in frame["properties"]]
    frame.to_csv(path, index=False)


def phase_import(run: Run, events: pd.DataFrame, url: str, workdir: Path) -> Figure:
    from django.core.management import call_command

    figure = Figure("import", "4 import_events --format mapped")
    parser = import_parser()
    if parser is None:
        figure.skipped = "skipped: import_events not available"
        return figure
    path = workdir / "events.csv"
    if not path.exists():  # the same file for every try
        import_csv(events, path)
    arguments, unused = import_arguments(parser, path)
    if unused:
        figure.note = (f"import_events has no flag for {', '.join(unused)}: the CSV has those columns, the command"
                       " leaves them out (it derives event ids from the row).")
    output = io.StringIO()
    try:
        with measured(figure, url):
            call_command("import_events", *arguments, stdout=output)
    except Exception as error:
        trace = "".join(traceback.format_exception(error)[-6:])
        raise BenchError(f"import_events {' '.join(arguments)} raised:\n{trace}{output.getvalue()}") from error
    print(f"  import_events said: {output.getvalue().splitlines()[0] if output.getvalue() else '(nothing)'}",
          file=sys.stderr)
    figure.events = len(events)
    run.check_stored(url, f"import_events {' '.join(arguments)}\n{output.getvalue()}", full=False)
    return figure


# ---------------------------------------------------------------- report


def report(run: Run) -> str:
    m = run.machine
    settings = m["postgresql_settings"]
    lines = [
        f"Foresight ingest benchmark: {run.events:,} events over {run.customers:,} customers and"
        f" {run.products:,} products, seed {run.seed}, batches of {BATCH:,}"
        + (f"; each phase run {run.repeat} times, the fastest shown" if run.repeat > 1 else ""),
        f"machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, load {m['load']} at start;"
        f" Python {m['python']}, Django {m['django']}",
        f"PostgreSQL {m['postgresql']} on {run.database}: shared_buffers {settings['shared_buffers']},"
        f" synchronous_commit {settings['synchronous_commit']}, max_wal_size {settings['max_wal_size']}",
        f"API: {run.workers} gunicorn sync workers; client: {run.clients} threads in the bench process"
        f" (requests, bodies of ~{run.body_kib} KiB pre-serialized with orjson) on the same cores",
        "",
    ]
    width = max([len(f.label) for f in run.figures] + [32])
    spread = run.repeat > 1
    lines.append(f"{'phase':<{width}} {'events/s':>10} {'seconds':>8}   CPU s: {'app':>5} {'pg':>5} {'client':>6}"
                 f" {'other':>5}" + ("   events/s of every try" if spread else ""))
    noisy = []
    for f in run.figures:
        if f.skipped:
            lines.append(f"{f.label:<{width}} {f.skipped}")
            continue
        app, pg, client, other = ("-" if v is None else f"{v:.1f}"
                                  for v in (f.app_cpu, f.postgres_cpu, f.client_cpu, f.other_cpu))
        tries = "   " + ", ".join(f"{r:,.0f}" for r in f.rates) if spread else ""
        lines.append(f"{f.label:<{width}} {f.rate:>10,.0f} {f.seconds:>8.2f}          {app:>5} {pg:>5} {client:>6}"
                     f" {other:>5}{tries}")
        if f.other_cpu and f.other_cpu > 0.15 * f.seconds * (m["cores"] or 1):
            noisy.append(f.label.split(" ", 1)[1])
    lines += ["", f"{'goal':<28} {'measured':>10} {'goal':>12}  status"]
    for label, name, baseline, threshold in GOALS:
        value = run.rate(name)
        if value is not None and baseline is not None:
            base = run.rate(baseline)
            value = value / base if base else None
        if value is None:
            lines.append(f"{label:<28} {'-':>10} {'>= ' + number(threshold):>12}  n/a")
        else:
            status = "met" if value >= threshold else "MISSED"
            lines.append(f"{label:<28} {number(value):>10} {'>= ' + number(threshold):>12}  {status}")
    lines += ["", "CPU s: app = gunicorn workers (API) or the bench process; pg = the bench database's backends;"
              " other = the rest of the machine."]
    notes = [f.note for f in run.figures if f.note]
    lines += notes
    if noisy:
        lines.append(f"NOISY: other processes used more than 15% of the cores during {', '.join(noisy)};"
                     " rerun on a quiet machine before trusting those figures.")
    return "\n".join(lines)


def save(run: Run) -> Path:
    folder = ROOT / "bench" / "results"
    folder.mkdir(exist_ok=True)
    path = folder / f"ingest-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    data = asdict(run)
    for figure, item in zip(run.figures, data["figures"], strict=True):
        item["events_per_second"] = figure.rate
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return path


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000, help="events per phase (default 300,000)")
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help="a PostgreSQL database on this machine; dropped and recreated")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP client threads (default 4)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each phase this many times and keep the fastest (default 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip", action="append", default=[], choices=["api", "bulk_create", "copy", "import"],
                        help="leave a phase out (repeatable)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/ingest-*.json")
    args = parser.parse_args(argv)

    url = args.database_url
    run = Run(events=args.events, customers=args.customers, products=args.products, seed=args.seed,
              workers=args.workers, clients=args.clients, repeat=args.repeat, database=redacted(url))
    print("creating and migrating the bench database ...", file=sys.stderr)
    server = database_recreate(url)
    django_setup(url)
    run.machine = machine_facts(server)
    products = _products(run)
    customer_ids, product_ids = shop_create(customers=args.customers, products=products)
    print(f"generating {args.events:,} events ...", file=sys.stderr)
    events = events_generate(args.events, customers=args.customers, products=products, seed=args.seed,
                             now=datetime.now(UTC))

    phases = {
        "api": lambda: phase_api(run, events, url, workdir),
        "bulk_create": lambda: phase_bulk_create(run, events, url, customer_ids, product_ids),
        "copy": lambda: phase_copy(run, events, url, customer_ids, product_ids),
        "import": lambda: phase_import(run, events, url, workdir),
    }
    with tempfile.TemporaryDirectory(prefix="foresight-bench-") as folder:
        workdir = Path(folder)
        for name, phase in phases.items():
            if name in args.skip:
                continue
            tries: list[Figure] = []
            for attempt in range(1, args.repeat + 1):
                events_reset(url)
                print(f"phase {name} ({attempt} of {args.repeat}) ...", file=sys.stderr)
                try:
                    figure = phase()
                except BenchError as error:
                    print(report(run), file=sys.stderr)
                    print(f"\nBENCH FAILED in phase {name}: {error}", file=sys.stderr)
                    return 1
                tries.append(figure)
                if figure.skipped:
                    print(f"  {figure.skipped}", file=sys.stderr)
                    break
                print(f"  {figure.rate:,.0f} events/s ({figure.seconds:.2f} s)", file=sys.stderr)
            best = min(tries, key=lambda f: f.seconds or 0.0)
            best.rates = [f.rate for f in tries if f.rate]
            run.figures.append(best)
    print()
    print(report(run))
    if not args.no_save:
        print(f"\nsaved {save(run).relative_to(ROOT)}")
    return 0



if __name__ == "__main__":
    sys.exit(main())
