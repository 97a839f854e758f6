"""Writing checked events to the database in bulk.

Every source (the API, the importers, the simulator) hands a frame from
`behavior.core.events.clean_events` to `events_store`. The rows go to a temporary staging
table (COPY on PostgreSQL), and three set-based statements then add unknown customers
and products and insert the events, skipping event ids that are already stored. So the
same event sent twice is stored once, even from two processes at the same time.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from django.db import IntegrityError, connection, transaction
from django.db.models import Field
from django.utils import timezone

from behavior.conf import foresight_settings
from behavior.core.events import FIELDS, Limits, clean_events, records_frame
from behavior.models import AnonymousLink, Customer, Event, Product

STAGING = "foresight_event_staging"

# Staging column types follow the model fields, so each backend gets its own types.
_STAGING_TYPES: dict[str, Field] = {
    "event_id": Event._meta.get_field("event_id"),
    "type": Event._meta.get_field("type"),
    "customer": Customer._meta.get_field("external_id"),
    "anonymous_id": Event._meta.get_field("anonymous_id"),
    "product": Product._meta.get_field("external_id"),
    "category": Event._meta.get_field("category"),
    "order_id": Event._meta.get_field("order_id"),
    "session_id": Event._meta.get_field("session_id"),
    "price": Event._meta.get_field("price"),
    "quantity": Event._meta.get_field("quantity"),
    "rating": Event._meta.get_field("rating"),
    "occurred_at": Event._meta.get_field("occurred_at"),
    "promised_at": Event._meta.get_field("promised_at"),
    "properties": Event._meta.get_field("properties"),
}
assert tuple(_STAGING_TYPES) == FIELDS, "the staging table must hold exactly the checked fields"


@dataclass
class IngestReport:
    accepted: list[str]  # event ids stored now
    duplicates: list[str]  # event ids stored before, or repeated within the batch
    rejected: list[dict]  # {"index", "event_id", "errors": {field: [messages]}}


def events_ingest(*, records: list) -> IngestReport:
    """Check a batch of events sent over the API and store the valid ones."""
    now = timezone.now()
    frame, problems = records_frame(records)
    limits = Limits(
        now=now,
        max_clock_skew=foresight_settings.MAX_CLOCK_SKEW,
        oldest=now - foresight_settings.MAX_EVENT_AGE,
        max_properties_bytes=foresight_settings.MAX_PROPERTIES_BYTES,
    )
    cleaned = clean_events(frame, limits)
    stored = set(events_store(cleaned.frame))
    ids = cleaned.frame["event_id"]
    repeated = [records[row]["event_id"].lower() for row in cleaned.repeated]

    errors: dict[int, dict[str, list[str]]] = {}
    for problem in sorted([*problems, *cleaned.problems], key=lambda p: p.row):
        errors.setdefault(int(problem.row), {}).setdefault(problem.field, []).append(problem.message)  # positions
    return IngestReport(
        accepted=[i for i in ids if i in stored],
        duplicates=[i for i in ids if i not in stored] + repeated,
        rejected=[
            {"index": row, "event_id": _event_id_of(records[row]), "errors": fields} for row, fields in errors.items()
        ],
    )


def _event_id_of(record) -> object:
    return record.get("event_id") if isinstance(record, dict) else None


@dataclass(frozen=True)
class StagedRows:
    """Checked events in the form the database loads: CSV for COPY on PostgreSQL, tuples on SQLite."""

    vendor: str
    payload: bytes | list[tuple]


def events_stage(events: pd.DataFrame, *, vendor: str) -> StagedRows:
    """Turn checked events into loadable rows. Pure, so an import can do it in another thread."""
    if vendor == "postgresql":
        # Empty unquoted CSV fields load as NULL, which the insert turns into "" where needed.
        # pyarrow writes the CSV about four times faster than DataFrame.to_csv.
        buffer = io.BytesIO()
        table = pa.Table.from_pandas(events[list(FIELDS)], preserve_index=False)
        pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
        return StagedRows(vendor, buffer.getvalue())
    # SQLite stores UUIDs as 32 hex digits and times as naive UTC text, the way Django does.
    rows = events[list(FIELDS)].astype(object)
    rows["event_id"] = events["event_id"].str.replace("-", "", regex=False)
    for name in ("occurred_at", "promised_at"):
        rows[name] = events[name].dt.strftime("%Y-%m-%d %H:%M:%S.%f").astype(object)
    rows = rows.where(rows.notna(), None)
    return StagedRows(vendor, list(rows.itertuples(index=False, name=None)))


def events_store(events: pd.DataFrame | StagedRows) -> list[str]:
    """Store checked events (or their staged rows); return the ids of those that were new.

    Customers and products the shop never announced are created from the events that name
    them. An anonymous visitor's event goes to their customer if identify already linked them.
    """
    staged = events if isinstance(events, StagedRows) else events_stage(events, vendor=connection.vendor)
    if not staged.payload:
        return []
    now = timezone.now()
    with transaction.atomic(), _staging() as cursor:
        _load(cursor, staged)
        _add_missing(cursor, "customer", now)
        while not _lock_customers(cursor):  # one named was erased meanwhile: it starts again, as a new customer
            _add_missing(cursor, "customer", now)
        _add_missing(cursor, "product", now)
        return _insert_events(cursor, now)


@contextmanager
def _staging() -> Iterator:
    columns = ", ".join(f"{name} {field.db_type(connection)}" for name, field in _STAGING_TYPES.items())
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {STAGING}")
        cursor.execute(f"CREATE TEMPORARY TABLE {STAGING} ({columns})")
        yield cursor
        cursor.execute(f"DROP TABLE {STAGING}")


def _load(cursor, staged: StagedRows) -> None:
    if staged.vendor != connection.vendor:
        raise ValueError(f"rows staged for {staged.vendor} cannot load into {connection.vendor}")
    if connection.vendor == "postgresql":
        # psycopg's own cursor, past Django's: its errors are made Django's (a lost connection an OperationalError
        # the API answers 503 to), as on any other query.
        with connection.wrap_database_errors, \
                cursor.cursor.copy(f"COPY {STAGING} ({', '.join(FIELDS)}) FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(staged.payload)
    else:
        placeholders = ", ".join(["%s"] * len(FIELDS))
        cursor.executemany(f"INSERT INTO {STAGING} VALUES ({placeholders})", staged.payload)


# Rows that already exist are filtered out first: ON CONFLICT alone would attempt (and undo)
# an insert for each of them, which costs about a third more on the events table.


# What a new customer or product gets from the batch's staged column of that name, besides its times.
_NEW_ROWS = {
    "customer": (Customer, "external_id, attributes, marketing_consent", "customer, '{}', false"),
    "product": (Product, "external_id, name, category, brand, price, active",
                "product, '', COALESCE(MAX(category), ''), '', MAX(price), true"),
}


def _add_missing(cursor, staged: str, now: datetime) -> None:
    """Create the customers (or products) the batch names that are not stored yet.

    In the order of their ids: each new row holds its key until the batch commits, and two batches naming the
    same new customers in other orders (a hash aggregate has none) each waited for a key the other held, a
    deadlock. In one order, the later batch waits at the first key they share.
    """
    model, columns, values = _NEW_ROWS[staged]
    table = model._meta.db_table
    cursor.execute(
        f"INSERT INTO {table} ({columns}, created_at, updated_at) SELECT {values}, %s, %s FROM {STAGING} s"
        f" WHERE {staged} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.external_id = s.{staged})"
        f" GROUP BY {staged} ORDER BY {staged} ON CONFLICT (external_id) DO NOTHING",
        [now, now],
    )


def _lock_customers(cursor) -> bool:
    """Hold the customers these events go to until they are stored; False if one named has just been erased.

    An erasure locks its customer before it gathers what to delete (customers.customer_erase), so it waits
    for this batch and deletes its events too, or this batch waits for the erasure and finds the customer
    gone: no event outlives its customer. FOR KEY SHARE blocks deletes and FOR UPDATE (a PUT of the customer
    waits for the batch), not other batches; it costs one indexed read of the batch's customers (measured in
    bench/erase_lock.py). SQLite runs one writer at a time: nothing to lock.
    """
    if connection.vendor != "postgresql":
        return True
    customers, links = Customer._meta.db_table, AnonymousLink._meta.db_table
    cursor.execute(
        f"SELECT count(*) FILTER (WHERE external_id IN (SELECT customer FROM {STAGING})),"
        f" (SELECT count(DISTINCT customer) FROM {STAGING})"
        f" FROM (SELECT external_id FROM {customers} WHERE external_id IN (SELECT customer FROM {STAGING})"
        f"  OR id IN (SELECT customer_id FROM {links} WHERE anonymous_id IN"
        f"   (SELECT anonymous_id FROM {STAGING} WHERE customer IS NULL))"
        "  ORDER BY id FOR KEY SHARE) locked"
    )
    locked, named = cursor.fetchone()
    return locked == named


def _insert_events(cursor, now: datetime) -> list[str]:
    table = Event._meta.db_table
    text = ("anonymous_id", "category", "order_id", "session_id")
    columns = ["event_id", "customer_id", "type", "product_id", "price", "quantity", "rating",
               "occurred_at", "promised_at", "properties", "received_at", *text]
    values = ["s.event_id", "COALESCE(c.id, l.customer_id)", "s.type", "p.id", "s.price", "s.quantity",
              "s.rating", "s.occurred_at", "s.promised_at", "s.properties", "%s",
              *(f"COALESCE(s.{name}, '')" for name in text)]
    insert = (
        f"INSERT INTO {table} ({', '.join(columns)})"
        f" SELECT {', '.join(values)} FROM {STAGING} s"
        f" LEFT JOIN {Customer._meta.db_table} c ON c.external_id = s.customer"
        f" LEFT JOIN {AnonymousLink._meta.db_table} l ON l.anonymous_id = s.anonymous_id"
        f" LEFT JOIN {Product._meta.db_table} p ON p.external_id = s.product"
    )
    returning = " RETURNING CAST(event_id AS text)"
    try:
        with transaction.atomic():
            cursor.execute(f"{insert} WHERE NOT EXISTS (SELECT 1 FROM {table} e WHERE e.event_id = s.event_id)"
                           f"{returning}", [now])
            ids = [row[0] for row in cursor.fetchall()]
    except IntegrityError:
        # Another writer stored some of these events after we looked: let the database skip them.
        # No conflict target: it also works on a table partitioned by month (docs/operations.md).
        cursor.execute(f"{insert} WHERE true ON CONFLICT DO NOTHING{returning}", [now])
        ids = [row[0] for row in cursor.fetchall()]
    if connection.vendor == "sqlite":  # stored as 32 hex digits
        ids = [f"{i[:8]}-{i[8:12]}-{i[12:16]}-{i[16:20]}-{i[20:]}" for i in ids]
    return ids
