import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from django.db import connection
from django.db.models import Count, F, Max, Min, Model, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from behavior.conditions import BOOLEAN, DATETIME, NUMBER, STRING, Condition, feature_columns, field_named
from behavior.core.events import TIME_RANGE
from behavior.core.features import NORM_DAYS, build_features, shop_norms
from behavior.models import (
    Contact,
    ContactPolicy,
    Customer,
    Event,
    ModelVersion,
    PastScore,
    Product,
    Score,
    ScoringRun,
    Target,
)


def customer_export(*, customer: Customer) -> dict:
    """Everything stored about a customer, by model.

    Walks every relation that points at Customer, so data added by later models is
    exported without touching this function (tests check that erase and export cover them).
    """
    data: dict[str, object] = {"customer": _row(Customer, Customer.objects.filter(pk=customer.pk))[0]}
    for model, field in Customer.data_models():
        rows = model._default_manager.filter(**{field: customer}).order_by("pk")
        data[model._meta.label_lower] = _row(model, rows)
    return data


def _row(model: type[Model], queryset) -> list[dict]:
    return list(queryset.values(*(f.attname for f in model._meta.concrete_fields)))


@dataclass(frozen=True)
class ShopOverview:
    customers: int
    products: int
    events_by_type: dict[str, int]
    first_event: datetime | None
    last_event: datetime | None
    orders: int
    late_orders: int
    reviews: int
    bad_reviews: int  # rated 1 or 2


def shop_overview() -> ShopOverview:
    """What the shop's behaviour data holds, in a handful of aggregate queries."""
    by_type = dict(Event.objects.values_list("type").annotate(n=Count("pk")).order_by())
    span = Event.objects.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    orders = Event.objects.filter(type="purchase").values("customer", "order_id").distinct().count()
    late = Event.objects.filter(type="delivery_delayed").values("customer", "order_id").distinct().count()
    reviews = Event.objects.filter(type="review").aggregate(all=Count("pk"), bad=Count("pk", filter=Q(rating__lte=2)))
    return ShopOverview(
        customers=Customer.objects.count(),
        products=Product.objects.count(),
        events_by_type=by_type,
        first_event=span["first"],
        last_event=span["last"],
        orders=orders,
        late_orders=late,
        reviews=reviews["all"],
        bad_reviews=reviews["bad"],
    )


# The columns behavior.core.features reads, with their Arrow types for a columnar read: the events table's own,
EVENT_COLUMNS = {
    "customer_id": pa.int64(),
    "type": pa.string(),
    "occurred_at": pa.timestamp("us", tz="UTC"),
    "product_id": pa.int64(),
    "category": pa.string(),
    "price": pa.float64(),
    "quantity": pa.int64(),
    "order_id": pa.string(),
    "session_id": pa.string(),
    "rating": pa.int64(),
    "promised_at": pa.timestamp("us", tz="UTC"),
}
# and what an order line's properties say (the Olist importer writes them; a shop's events may too).
PROPERTY_COLUMNS = {"seller": pa.string(), "freight": pa.float64(), "payment": pa.string()}




def event_columns_sql(vendor: str) -> list[str]:
    """The SELECT expressions of EVENT_COLUMNS and PROPERTY_COLUMNS. Text left empty is missing, as NULL would be;
    a property of the wrong JSON type is missing too, so that no stored row can break a read."""
    def column(name: str, arrow_type: pa.DataType) -> str:
        if pa.types.is_timestamp(arrow_type):  # a time no reader can hold (rows stored before times were bounded)
            first, last = TIME_RANGE  # rows stored before times were checked: pyarrow refuses years past 9999
            return f"CASE WHEN {name} >= '{first}' AND {name} < '{last}' THEN {name} END AS {name}"
        return f"NULLIF({name}, '') AS {name}" if arrow_type == pa.string() and name != "type" else name

    columns = [column(c, t) for c, t in EVENT_COLUMNS.items()]
    for name, arrow_type in PROPERTY_COLUMNS.items():
        number = pa.types.is_floating(arrow_type)
        if vendor == "postgresql":
            value = f"(properties->>'{name}')::float8" if number else f"NULLIF(properties->>'{name}', '')"
            kinds = "('number')" if number else "('string')"
            columns.append(f"CASE WHEN jsonb_typeof(properties->'{name}') IN {kinds} THEN {value} END AS {name}")
        else:
            kinds = "('integer', 'real')" if number else "('text')"
            columns.append(f"CASE WHEN json_type(properties, '$.{name}') IN {kinds} "
                           f"THEN json_extract(properties, '$.{name}') END AS {name}")
    return columns


def events_frame(
    *, until: datetime | None = None, since: datetime | None = None, customers: tuple[int, int] | None = None,
    sample_every: int = 1,
) -> pd.DataFrame:
    """Customers' events (at or after `since`, before `until`) as one columnar frame: all customers', or
    those of an id range [first, last].

    `sample_every=k` keeps the customers whose id is a multiple of k (a sample that is the same
    on every read, for training on a big shop). PostgreSQL streams the rows with COPY into
    pyarrow (no Python object per value); anonymous events, which no customer can be scored
    on, are left out.
    """
    where: list[str] = ["customer_id IS NOT NULL"]
    params: list[datetime | int] = []
    if until is not None:
        where.append("occurred_at < %s")
        params.append(until)
    if since is not None:
        where.append("occurred_at >= %s")
        params.append(since)
    _customers_kept("customer_id", customers, sample_every, where, params)
    read_columns = {**EVENT_COLUMNS, **PROPERTY_COLUMNS}
    sql = (f"SELECT {', '.join(event_columns_sql(connection.vendor))} FROM {Event._meta.db_table} "
           f"WHERE {' AND '.join(where)}")
    if connection.vendor == "postgresql":
        options = pa_csv.ConvertOptions(column_types=read_columns, strings_can_be_null=True)
        read = pa_csv.ReadOptions(column_names=list(read_columns))
        rows = _copy_out(sql, params)
        table = (pa_csv.read_csv(rows, read_options=read, convert_options=options) if rows.getbuffer().nbytes
                 else pa.schema(read_columns).empty_table())  # no events: pyarrow reads no empty CSV
        return table.to_pandas(types_mapper=_nullable)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        frame = pd.DataFrame.from_records(cursor.fetchall(), columns=list(read_columns))
    for name, arrow_type in read_columns.items():
        if pa.types.is_timestamp(arrow_type):
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601").dt.as_unit("us")
        elif pa.types.is_integer(arrow_type):
            frame[name] = frame[name].astype("Int64")
        elif pa.types.is_floating(arrow_type):
            frame[name] = frame[name].astype("float64")
        else:
            frame[name] = frame[name].astype("str")
    return frame


NORM_ORDERS = 20_000  # the latest shipped orders a shop's usual is taken from: enough for a median, bounded cost


def shop_norms_at(now: datetime) -> dict:
    """The shop's usual figures at `now` (behavior.core.features.shop_norms) from its latest shipped orders, and the
    start of its history (one scan of the events table: 1 s or so for 10 million events)."""
    now = pd.Timestamp(now).to_pydatetime()  # a database driver takes datetimes, not pandas' Timestamps
    table = Event._meta.db_table
    recent = (f"SELECT customer_id, order_id FROM {table} WHERE type = 'order_shipped' AND occurred_at < %s "
              f"AND occurred_at >= %s AND customer_id IS NOT NULL ORDER BY occurred_at DESC LIMIT {NORM_ORDERS}")
    sql = (f"SELECT customer_id, type, occurred_at, order_id FROM {table} "
           f"WHERE type IN ('purchase', 'order_approved', 'order_shipped') "
           f"AND occurred_at < %s AND (customer_id, order_id) IN ({recent})")
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, now, now - timedelta(days=NORM_DAYS)])
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=["customer_id", "type", "occurred_at", "order_id"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True, format="ISO8601")
    for name in EVENT_COLUMNS:
        if name not in frame:
            frame[name] = None
    frame["promised_at"] = pd.to_datetime(frame["promised_at"], utc=True)
    first = Event.objects.filter(occurred_at__lt=now, customer__isnull=False).aggregate(first=Min("occurred_at"))
    return {**shop_norms(frame[list(EVENT_COLUMNS)], now),
            "history_start": None if first["first"] is None else first["first"].isoformat()}


def _copy_out(sql: str, params: list) -> io.BytesIO:
    """A query's rows as CSV, streamed by PostgreSQL's COPY: no Python object per value."""
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        query = cursor.cursor.mogrify(sql, params)
        # psycopg's own cursor, past Django's: its errors are made Django's, so a lost connection is the
        # OperationalError a scoring chunk is retried on.
        with connection.wrap_database_errors, \
                cursor.cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy:
            for block in copy:
                buffer.write(block)
    buffer.seek(0)
    return buffer


def _nullable(arrow_type: pa.DataType):
    """Integers with gaps stay integers (Int64) instead of becoming floats."""
    return pd.Int64Dtype() if pa.types.is_integer(arrow_type) else None


def customer_id_ranges(size: int) -> list[tuple[int, int]]:
    """Customers' ids cut into ranges of `size` customers each: how big jobs are split over workers."""
    ids = np.fromiter(Customer.objects.order_by("pk").values_list("pk", flat=True), dtype=np.int64)
    starts = ids[::size]
    ends = np.append(ids[size - 1 :: size], ids[-1:])[: len(starts)]
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _customers_kept(column: str, customers: tuple[int, int] | None, sample_every: int, where: list[str],
                    params: list) -> None:
    """Add to a WHERE clause the id range [first, last] and the one-in-`sample_every` sample of customers."""
    if customers is not None:
        where.append(f"{column} BETWEEN %s AND %s")
        params += list(customers)
    if sample_every > 1:
        where.append(f"{column} %% %s = 0")
        params.append(sample_every)


def customers_frame(*, customers: tuple[int, int] | None = None, sample_every: int = 1) -> pd.DataFrame:
    """customer_id, created_at and attributes of all customers, or of an id range [first, last].

    `sample_every` as for events_frame. On PostgreSQL through COPY: 3 s for a million customers
    against 11-14 s through the ORM.
    """
    where: list[str] = ["TRUE"]
    params: list[datetime | int] = []
    _customers_kept("id", customers, sample_every, where, params)
    sql = (f"SELECT id, created_at, CAST(attributes AS text) FROM {Customer._meta.db_table} "
           f"WHERE {' AND '.join(where)} ORDER BY id")
    if connection.vendor == "postgresql":
        buffer = _copy_out(sql, params)
        options = pa_csv.ConvertOptions(column_types={"customer_id": pa.int64(), "created_at": pa.timestamp(
            "us", tz="UTC"), "attributes": pa.string()})
        read = pa_csv.ReadOptions(column_names=["customer_id", "created_at", "attributes"])
        frame = pa_csv.read_csv(buffer, read_options=read, convert_options=options).to_pandas()
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            frame = pd.DataFrame.from_records(cursor.fetchall(), columns=["customer_id", "created_at", "attributes"])
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    frame["attributes"] = [orjson.loads(a) if a else {} for a in frame["attributes"]]
    return frame


def scores_frame() -> pd.DataFrame:
    """Every current score: customer (the shop's id), target, probability, model_version."""
    rows = Score.objects.order_by("customer__external_id", "target").values_list(
        "customer__external_id", "target", "probability", "model_version_id")
    return pd.DataFrame.from_records(list(rows), columns=["customer", "target", "probability", "model_version"])


def scores_top(*, target: str, limit: int = 5) -> list[Score]:
    """The customers most likely to, with their reasons."""
    return list(Score.objects.filter(target=target).select_related("customer", "model_version")
                .order_by("-probability")[:limit])


def scores_for_customer(*, customer: Customer) -> list[Score]:
    return list(Score.objects.filter(customer=customer).select_related("model_version").order_by("target"))


_ARROW_TYPES = {NUMBER: pa.float64(), BOOLEAN: pa.bool_(), STRING: pa.string(), DATETIME: pa.timestamp("us", tz="UTC")}


def condition_frame(*, fields: Iterable[str], customer_ids: Iterable[int] | None = None,
                    customers: tuple[int, int] | None = None) -> pd.DataFrame:
    """The stored condition fields (customer.* and score.*) of all customers, of `customer_ids` or of an id range.

    One row per customer, indexed by customer_id, one column per field name ("score.purchase_intent");
    NaN, None or NaT where a value is missing, as `Condition.mask` expects. Two queries: customers, with
    each field's SQL expression, then the scores of the targets asked for. Feature-based
    fields (feature.*, customer.days_since_last_purchase) are not stored: join them from
    condition_features_frame, or from a build_features frame through conditions.feature_columns.
    """
    chosen = [field_named(name) for name in dict.fromkeys(fields)]
    stored = [f for f in chosen if f.sql is not None]
    rows = Customer.objects.order_by("pk")
    scores = Score.objects.filter(target__in=[f.score for f in chosen if f.score])
    if customer_ids is not None:
        ids = list(customer_ids)
        rows, scores = rows.filter(pk__in=ids), scores.filter(customer__in=ids)
    if customers is not None:
        first, last = customers
        rows = rows.filter(pk__gte=first, pk__lte=last)
        scores = scores.filter(customer_id__gte=first, customer_id__lte=last)
    frame = _values_frame(
        rows.values_list("pk", *(f.sql for f in stored if f.sql is not None)),  # all of them: the `if` tells mypy
        {"customer_id": pa.int64(), **{f.name: _ARROW_TYPES[f.type] for f in stored}},
    ).set_index("customer_id")
    if any(f.score for f in chosen):
        probabilities = _values_frame(
            scores.values_list("customer_id", "target", "probability"),
            {"customer_id": pa.int64(), "target": pa.string(), "probability": pa.float64()},
        ).pivot(index="customer_id", columns="target", values="probability")
        for f in chosen:
            if f.score:
                frame[f.name] = probabilities.get(f.score, pd.Series(dtype="float64")).reindex(frame.index)
    return frame[[f.name for f in chosen if f.sql is not None or f.score]]


def condition_features_frame(*, fields: Iterable[str], now: datetime, customers: tuple[int, int] | None = None
                             ) -> pd.DataFrame:
    """The feature-based condition fields of every customer (or an id range) at `now`, from the events before it."""
    return feature_columns(features_at(now, customers=customers), fields)


def features_at(now: datetime, *, customers: tuple[int, int] | None = None, sample_every: int = 1) -> pd.DataFrame:
    """Every customer's (or an id range's, or a sample's: see events_frame) features at `now` (build_features),
    from the events before it."""
    part = customers is not None or sample_every > 1
    norms = shop_norms_at(now) if part else None  # a part is not the whole shop
    return build_features(events_frame(until=now, customers=customers, sample_every=sample_every), now,
                          customers_frame(customers=customers, sample_every=sample_every), norms=norms)


# A count whose condition reads features (built from events) reads the events of at most this many customers:
# on a bigger shop a fixed sample of them (the ids divisible by k), scaled up. The demo's shop (20,000
# customers) is read whole, as an audience preview reads it; a shop of a million is read one customer in 50.
CONDITION_COUNT_SAMPLE = 20_000


COUNT_FEATURES_SECONDS = 120  # a builder's counts reuse the features built for the last one this long
_count_features_kept: dict[tuple, pd.DataFrame] = {}  # one entry: the latest


def _count_features(now: datetime, sample_every: int) -> pd.DataFrame:
    """The features a condition count reads: built once per COUNT_FEATURES_SECONDS, sample and database in this
    process, and again as soon as a customer is added; events that arrive meanwhile count from the next build.
    The builder counts after each edit, and building features for 20,000 customers takes seconds (a campaign
    page that built them for the demo's shop took 2-3 s); a count of stored fields alone took 0.35 s at
    100,000 customers. (Events have no ordered key to see a new one by: their ids are the clients' UUIDs.)"""
    newest = Customer.objects.aggregate(customer=Max("pk"))["customer"]
    key = (connection.settings_dict["NAME"], sample_every, newest, int(now.timestamp()) // COUNT_FEATURES_SECONDS)
    if key not in _count_features_kept:
        features = features_at(now, sample_every=sample_every)
        _count_features_kept.clear()
        _count_features_kept[key] = features
    return _count_features_kept[key]


@dataclass(frozen=True)
class ConditionCount:
    matched: int  # customers the condition matches now (estimated when sample_every > 1)
    with_consent: int  # of them, those with marketing consent
    sample_every: int  # 1: every customer counted; k: one customer in k, the counts scaled by k


def condition_count(*, condition: Condition, now: datetime | None = None) -> ConditionCount:
    """How many customers a condition matches now: the condition builder's count, as it is edited.

    Stored fields (scores, customer fields) are read for every customer (two queries, as condition_frame);
    feature fields need features built from events, read for at most CONDITION_COUNT_SAMPLE customers.
    """
    now = now or timezone.now()
    fields = list(dict.fromkeys(["customer.marketing_consent", *condition.fields]))
    frame = condition_frame(fields=fields)
    computed = [f for f in fields if f not in frame.columns]
    sample_every = 1
    if computed:
        sample_every = max(1, -(-len(frame) // CONDITION_COUNT_SAMPLE))  # ceiling division
        if sample_every > 1:
            frame = frame[frame.index % sample_every == 0]
        # Joined to the customers of now: one erased since the features were built is not counted.
        frame = frame.join(feature_columns(_count_features(now, sample_every), computed), how="left")
    mask = condition.mask(frame, now)
    consent = frame["customer.marketing_consent"].fillna(False).to_numpy(bool)
    return ConditionCount(int(mask.sum()) * sample_every, int((mask & consent).sum()) * sample_every, sample_every)


def average_order_value(now: datetime, days: int = 90) -> Decimal:
    """What the shop's orders of the last `days` were worth on average (0 without any): their lines' total over
    the orders (a purchase without an order id is an order of its own)."""
    lines = Event.objects.filter(type="purchase", occurred_at__gte=now - timedelta(days=days), occurred_at__lt=now)
    unnumbered = Q(order_id__isnull=True) | Q(order_id="")
    totals = lines.aggregate(spent=Sum(F("price") * Coalesce(F("quantity"), 1)),
                             orders=Count("order_id", distinct=True, filter=~unnumbered),
                             unnumbered=Count("pk", filter=unnumbered))
    orders = totals["orders"] + totals["unnumbered"]
    return Decimal(str(totals["spent"])) / orders if orders and totals["spent"] is not None else Decimal(0)


def conditions_frame(conditions: Iterable, now: datetime, *, also: Iterable[str] = (),
                     customers: tuple[int, int] | None = None) -> pd.DataFrame:
    """Every customer's (or an id range's) values of the fields these conditions use, and of the fields `also`.

    Stored fields come from condition_frame, the feature-based ones are built as of `now`.
    """
    fields = list(dict.fromkeys([*also, *(f for c in conditions for f in c.fields)]))
    frame = condition_frame(fields=fields, customers=customers)
    computed = [f for f in fields if f not in frame.columns]
    if computed:
        frame = frame.join(condition_features_frame(fields=computed, now=now, customers=customers), how="left")
    return frame


def past_scores(*, run_id: int, target: str) -> pd.Series:
    """The probabilities a run kept for a target, indexed by customer_id."""
    rows = PastScore.objects.filter(run_id=run_id, target=target).order_by().values_list("customer_id", "probability")
    frame = _values_frame(rows, {"customer_id": pa.int64(), "probability": pa.float64()})
    return frame.set_index("customer_id")["probability"]


def _values_frame(rows, columns: dict[str, pa.DataType]) -> pd.DataFrame:
    """A values_list queryset as a frame of the given Arrow types: through COPY on PostgreSQL."""
    if connection.vendor == "postgresql":
        buffer = _copy_out(*rows.query.sql_with_params())
        if buffer.getbuffer().nbytes:  # read_csv refuses an empty file
            options = pa_csv.ConvertOptions(column_types=columns, strings_can_be_null=True,
                                            quoted_strings_can_be_null=False, true_values=["t"], false_values=["f"])
            read = pa_csv.ReadOptions(column_names=list(columns))
            return pa_csv.read_csv(buffer, read_options=read, convert_options=options).to_pandas()
        rows = []
    values = list(zip(*rows, strict=True)) or [()] * len(columns)
    arrays = [pa.array(v, arrow_type) for arrow_type, v in zip(columns.values(), values, strict=True)]
    return pa.table(arrays, names=list(columns)).to_pandas()


def contacts_remaining(*, customer_ids: np.ndarray, at: datetime) -> np.ndarray:
    """For each customer, how many more contacts the contact policy allows at `at`."""
    policy = ContactPolicy.current()
    used = contacts_used(policy, at).reindex(np.asarray(customer_ids, dtype=np.int64), fill_value=0).to_numpy()
    return np.maximum(policy.max_contacts - used, 0)


def contacts_used(policy: ContactPolicy, at: datetime) -> pd.Series:
    """Contacts per customer in the policy's window ending at `at`, for customers with any."""
    since = at - timedelta(days=policy.per_days)
    rows = (Contact.objects.filter(contacted_at__gt=since, contacted_at__lte=at)
            .values_list("customer_id").annotate(n=Count("id")).order_by())
    return pd.Series(dict(rows), dtype=np.int64)


@dataclass(frozen=True)
class NextRun:
    at: datetime  # in the past while overdue: nothing sends the schedule's tasks (no beat running)
    schedule: str  # the periodic task's name, as the admin's schedules list it


def schedule_next_run(*, task: str) -> NextRun | None:
    """When `task` is next due by its enabled schedules (the soonest), counted from each one's last run; a schedule
    that has not run yet is counted from now, as beat counts it from its start. None: no enabled schedule runs it."""
    now = timezone.now()
    due = [NextRun(now + p.schedule.remaining_estimate(p.last_run_at or now), p.name)
           for p in PeriodicTask.objects.filter(task=task, enabled=True).select_related(
               "interval", "crontab", "solar", "clocked")]
    return min(due, key=lambda d: d.at, default=None)


def scorers_serving() -> list[tuple[Target, ModelVersion | None]]:
    """Each target, by name, with the champion that scores it (None: nothing serves it), in two queries."""
    champions = {v.target: v for v in ModelVersion.objects.filter(
        status=ModelVersion.Status.CHAMPION, target__in=Target.objects.values("name"))}
    return [(target, champions.get(target.name)) for target in Target.objects.order_by("name")]


def scoring_runs_latest(*, limit: int) -> list[ScoringRun]:
    """The latest scoring runs, newest first, without their larger records (norms, outcomes)."""
    return list(ScoringRun.objects.only("pk", "status", "as_of", "started_at", "finished_at", "customers", "chunks",
                                        "error").order_by("-started_at", "-pk")[:limit])
