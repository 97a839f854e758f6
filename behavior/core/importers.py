"""Reading event files into the canonical events frame (pure pandas, no database).

Each reader turns one source format into `Chunk`s: frames with the columns of
`behavior.core.events.FIELDS`, indexed by where each event came from (the file line, the
Parquet row, or for Olist "file line N"), so that problems found later point at it.
Event ids are derived from the source name and the row's content, so importing the same
file twice gives the same ids and the second import adds nothing.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from .event_types import EVENT_TYPES
from .events import FIELDS, TEXT_FIELDS, TIME_FIELDS, Problem

# Rows read and checked at a time, while the previous chunk is stored (see services.imports).
CHUNK_ROWS = 100_000
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


class SourceError(ValueError):
    """The source as a whole cannot be read (missing file or column, bad option)."""


@dataclass
class Chunk:
    events: pd.DataFrame  # canonical columns, unique index labels naming the source row
    rows: int  # source rows read for this chunk
    problems: list[Problem] = field(default_factory=list)  # rows the reader could not use; not imported
    skipped: dict[str, pd.Index] = field(default_factory=dict)  # reason -> rows left out on purpose


@dataclass
class Source:
    name: str
    chunks: Iterator[Chunk]
    total_rows: int | None = None  # for a progress bar; an estimate for CSV
    row_label: str = "line"  # what an integer index label counts: "line" or "row"


# --- Event ids ---------------------------------------------------------------------------


def event_ids(source: str, keys: pd.DataFrame) -> pd.Series:
    """One UUID (version 8, RFC 9562) per row, from the source name and the key columns.

    Two 64-bit pandas row hashes keyed by the source give the 128 bits, about 0.7 µs per row
    (uuid5 in a Python loop costs 4 µs). Numbers, times and text are normalised first, so that
    equal values get equal ids whatever the width of their dtype or the unit of their times.
    A test pins known ids, so a pandas upgrade that changed its hash would be noticed.
    """
    normalised = pd.DataFrame(index=keys.index)
    for name, values in keys.items():
        if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
            normalised[name] = pd.to_datetime(values, utc=True).dt.as_unit("us").astype("int64")  # NaT: a fixed value
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            normalised[name] = values.astype("float64")
        else:
            normalised[name] = values.astype("str").fillna("")
    halves = np.empty((len(keys), 2), dtype=">u8")
    for column, part in enumerate(("hi", "lo")):
        hash_key = hashlib.blake2b(f"{source}/{part}".encode(), digest_size=8).hexdigest()
        halves[:, column] = pd.util.hash_pandas_object(normalised, index=False, hash_key=hash_key).to_numpy()
    octets = halves.view(np.uint8).reshape(-1, 16)
    octets[:, 6] = (octets[:, 6] & 0x0F) | 0x80  # version 8: custom
    octets[:, 8] = (octets[:, 8] & 0x3F) | 0x80  # RFC variant
    digits = np.empty((len(keys), 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[octets >> 4]
    digits[:, 1::2] = _HEX[octets & 0x0F]
    text = np.full((len(keys), 36), ord("-"), dtype=np.uint8)
    for start, end, first in ((0, 8, 0), (9, 13, 8), (14, 18, 12), (19, 23, 16), (24, 36, 20)):
        text[:, start:end] = digits[:, first : first + end - start]
    offsets = np.arange(0, 36 * (len(keys) + 1), 36, dtype=np.int32)
    strings = pa.StringArray.from_buffers(len(keys), pa.py_buffer(offsets), pa.py_buffer(text))
    return pd.Series(pd.array(strings, dtype="str"), index=keys.index, name="event_id")


# --- CSV with true line numbers ------------------------------------------------------------

_SKIPPED_LINE = re.compile(r"Skipping line (\d+): expected \d+ fields, saw (\d+)")
_EXTRA = "\x00extra"  # a column past the last one catches rows with one field too many


def _scan(path: Path) -> tuple[int, bool]:
    """Count a file's lines and see whether it quotes anything (1 GB/s; used for progress)."""
    lines, quoted, last = 0, False, b"\n"
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            lines += block.count(b"\n")
            quoted = quoted or b'"' in block
            last = block[-1:]
    return lines + (last != b"\n"), quoted


def _csv_chunks(path: Path, *, names: list[str] | None = None, chunk_rows: int = CHUNK_ROWS,
                quoted: bool = True) -> Iterator[tuple[pd.DataFrame, list[Problem]]]:
    """Read a CSV file as text with pandas' parser, each chunk indexed by the line its rows start on.

    pandas counts records, not lines, and drops rows with too many fields, with a warning
    naming the record. Here line breaks inside quoted fields are added back, and rows with
    too many fields stay in the chunk (empty, or cut to the header) with a problem, so that
    every bad row is named by its line. Blank lines are no rows but count as lines.
    `quoted=False` promises no quotes in the file and saves looking for line breaks.
    """
    try:
        if _regular(path, names):
            yield from _arrow_chunks(path, names, chunk_rows)
        else:
            yield from _lined_chunks(path, names, chunk_rows, quoted)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise SourceError(f"{path.name} cannot be read as UTF-8 CSV: {error}") from error


def _arrow_options(path: Path, names: list[str] | None, block_size: int = 1 << 20) -> dict:
    header = names or pa_csv.open_csv(path).schema.names
    return {
        "read_options": pa_csv.ReadOptions(column_names=names, block_size=block_size),
        "parse_options": pa_csv.ParseOptions(newlines_in_values=True),
        "convert_options": pa_csv.ConvertOptions(  # all text, as pandas' dtype=str
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True, quoted_strings_can_be_null=True
        ),
    }


def _regular(path: Path, names: list[str] | None) -> bool:
    """Whether each line of the file is exactly one well-formed row, so a row's line is its position.

    Such files (most exports) are read by pyarrow, about ten times faster than the careful
    line-tracking pandas reader below, which the rest (blank lines, bad rows, line breaks
    inside quoted fields) still get. The check itself is a streaming pyarrow pass.
    """
    lines, _ = _scan(path)
    try:
        with path.open("rb") as file:
            if file.read(3) == b"\xef\xbb\xbf":
                return False  # a byte order mark: pandas' reader handles it
        rows = sum(batch.num_rows for batch in pa_csv.open_csv(path, **_arrow_options(path, names)))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return False
    return rows + (0 if names else 1) == lines


def _arrow_chunks(path: Path, names: list[str] | None, chunk_rows: int):
    first_line = 1 if names else 2
    row_bytes = max(1, path.stat().st_size // max(1, _scan(path)[0]))
    reader = pa_csv.open_csv(path, **_arrow_options(path, names, block_size=min(1 << 28, chunk_rows * row_bytes)))
    for batch in reader:
        frame = batch.to_pandas()
        frame.index = pd.RangeIndex(first_line, first_line + len(frame))
        first_line += len(frame)
        # An all-empty row like ",,," is no event, as in the pandas reader.
        yield frame[frame.notna().any(axis=1)], []


def _lined_chunks(path: Path, names: list[str] | None, chunk_rows: int, quoted: bool):
    header = names or list(pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns)
    # header=0 with one name more than the header has fails in pandas, so the header row is skipped.
    reader = pd.read_csv(
        path, header=None, skiprows=0 if names else 1, names=[*header, _EXTRA], index_col=False, dtype=str,
        encoding="utf-8-sig", keep_default_na=False, na_values=[""], skip_blank_lines=False, on_bad_lines="warn",
        chunksize=chunk_rows,
    )
    too_many = f"expected {len(header)} fields, saw {{}}"
    record = 1 if names else 2  # the record number (as pandas counts them) of the next row
    breaks = 0 if names else sum(name.count("\n") for name in header)  # line breaks inside quoted fields so far
    dropped: dict[int, str] = {}  # records that pandas dropped and that are not placed yet
    with reader:
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                frame = next(reader, None)
            for warning in caught:
                if "does not match length of data" in str(warning.message):
                    # The first row had 2+ fields too many: pandas then cuts every long row silently.
                    raise SourceError(f"{path.name}: the first row has more fields than the header ({len(header)})")
                found = _SKIPPED_LINE.findall(str(warning.message))
                dropped.update((int(number), too_many.format(seen)) for number, seen in found)
                if not found:
                    warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            if frame is None:
                if not dropped:
                    break
                frame = pd.DataFrame(columns=[*header, _EXTRA], dtype="str")  # bad records after the last row
                end = max(dropped) + 1
            else:
                end = record + len(frame)
                for number in sorted(dropped):
                    end += number < end
            bad = np.array(sorted(number for number in dropped if number < end), dtype=np.int64)
            records = np.setdiff1d(np.arange(record, end, dtype=np.int64), bad)
            inner = np.zeros(len(frame), dtype=np.int64)
            if quoted:
                for _, values in frame.items():
                    inner += values.str.count("\n").fillna(0).to_numpy(dtype=np.int64)
            before = np.concatenate([[0], np.cumsum(inner)])  # breaks before each row, and in total
            frame.index = pd.Index(records + breaks + before[:-1])
            bad_lines = bad + breaks + before[np.searchsorted(records, bad)]
            problems = [Problem(int(line), "", dropped.pop(int(number)))
                        for number, line in zip(bad, bad_lines, strict=True)]
            long = frame.pop(_EXTRA).notna()
            problems += [Problem(line, "", too_many.format(len(header) + 1)) for line in frame.index[long]]
            if len(bad):
                frame = frame.reindex(frame.index.union(bad_lines))
            # A blank line is no row; an all-empty row like ",,," reads the same and is dropped too.
            frame = frame[frame.notna().any(axis=1) | frame.index.isin([p.row for p in problems])]
            breaks += int(before[-1])
            record = end
            yield frame, sorted(problems, key=lambda p: p.row)


def _read_csv(path: Path) -> tuple[pd.DataFrame, list[Problem]]:
    frames, problems = [], []
    for frame, found in _csv_chunks(path, chunk_rows=1_000_000):
        frames.append(frame)
        problems += found
    return pd.concat(frames), problems


# --- Values ------------------------------------------------------------------------------


def _unix_times(values: pd.Series, name: str, problems: list[Problem]) -> pd.Series:
    seconds = pd.to_numeric(values, errors="coerce")
    unreadable = values.notna() & ~seconds.between(0, 1e10)
    problems += [Problem(row, name, f"is not a unix time in seconds: {_shown(values[row])}")
                 for row in values.index[unreadable]]
    micros = (seconds.where(~unreadable) * 1_000_000).round().astype("Int64")
    return pd.to_datetime(micros, unit="us", utc=True)


def _local_times(values: pd.Series, timezone: str) -> pd.Series:
    """Naive local times (datetime64) to UTC. A skipped hour moves forward; a repeated one is read as DST."""
    return values.dt.tz_localize(
        timezone, ambiguous=np.ones(len(values), dtype=bool), nonexistent="shift_forward"
    ).dt.tz_convert("UTC")


def _times(values: pd.Series, name: str, problems: list[Problem], *, fmt: str | None, timezone: str) -> pd.Series:
    """Times in any form (text with --time-format or ISO 8601, unix seconds, typed) as UTC."""
    if fmt == "unix":
        return _unix_times(values, name, problems)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values):
        return _local_times(values, timezone)
    text = values.astype("str")
    try:
        times = pd.to_datetime(text, format=fmt or "ISO8601", errors="coerce")
    except ValueError:  # offsets that differ from row to row (summer and winter time)
        times = pd.to_datetime(text, format=fmt or "ISO8601", errors="coerce", utc=True)
    unreadable = text.notna() & times.isna()
    problems += [Problem(row, name, f"is not a time in the format {fmt or 'ISO 8601'}: {_shown(text[row])}")
                 for row in text.index[unreadable]]
    return times.dt.tz_convert("UTC") if isinstance(times.dtype, pd.DatetimeTZDtype) else _local_times(times, timezone)


def _numbers(values: pd.Series, name: str, problems: list[Problem]) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    unreadable = values.notna() & numbers.isna()
    problems += [Problem(row, name, f"is not a number: {_shown(values[row])}") for row in values.index[unreadable]]
    return numbers


def _shown(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _frame(index: pd.Index, **columns) -> pd.DataFrame:
    """Canonical columns with the dtypes `clean_events` reads fastest, also where empty."""
    frame = pd.DataFrame(columns, index=index).reindex(columns=FIELDS)
    for name in ("event_id", "type", *TEXT_FIELDS):
        frame[name] = frame[name].astype("str")
    for name in TIME_FIELDS:
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


# --- Taobao UserBehavior -----------------------------------------------------------------

TAOBAO_TYPES = {"pv": "product_view", "cart": "add_to_cart", "fav": "add_to_wishlist", "buy": "purchase"}
# The dataset's official days, Beijing time; the file also holds some stray earlier timestamps.
TAOBAO_WINDOW = (pd.Timestamp("2017-11-25", tz="Asia/Shanghai"), pd.Timestamp("2017-12-04", tz="Asia/Shanghai"))
TAOBAO_OUTSIDE = "outside the official window 2017-11-25..2017-12-03 (Beijing time)"


def read_taobao(path: Path, *, keep_outside_window: bool = False, chunk_rows: int = CHUNK_ROWS) -> Source:
    """UserBehavior.csv: user_id,item_id,category_id,behavior_type,timestamp without a header.

    A buy has no order id in the data; the user's buys in the same second make one order.
    """
    path = _existing(path)
    lines, quoted = _scan(path)

    def chunks() -> Iterator[Chunk]:
        names = ["user", "item", "category", "behavior", "timestamp"]
        for raw, problems in _csv_chunks(path, names=names, chunk_rows=chunk_rows, quoted=quoted):
            times = _unix_times(raw["timestamp"], "occurred_at", problems)
            buy = raw["behavior"].eq("buy")
            events = _frame(
                raw.index,
                event_id=event_ids("taobao", raw),
                type=raw["behavior"].map(TAOBAO_TYPES).fillna(raw["behavior"]),  # unknown: the checks name it
                customer=raw["user"],
                product=raw["item"],
                category=raw["category"],
                order_id=(raw["user"] + "-" + raw["timestamp"]).where(buy),
                occurred_at=times,
            )
            outside = times.notna() & ((times < TAOBAO_WINDOW[0]) | (times >= TAOBAO_WINDOW[1]))
            skipped = {} if keep_outside_window or not outside.any() else {TAOBAO_OUTSIDE: raw.index[outside]}
            yield Chunk(events, rows=len(raw), problems=problems, skipped=skipped)

    return Source("taobao", chunks(), total_rows=lines)


# --- Olist --------------------------------------------------------------------------------

OLIST_FILES = {
    "orders": "olist_orders_dataset.csv",
    "customers": "olist_customers_dataset.csv",
    "items": "olist_order_items_dataset.csv",
    "reviews": "olist_order_reviews_dataset.csv",
    "products": "olist_products_dataset.csv",
    "categories": "product_category_name_translation.csv",
}
OLIST_PAYMENTS = "olist_order_payments_dataset.csv"  # optional: the payment kind of each order
OLIST_TIMEZONE = "America/Sao_Paulo"  # UTC-3; UTC-2 in the summer time of 2016-2019
# Orders that will never arrive are not late.
OLIST_NEVER_DELIVERED = ("canceled", "unavailable")


def read_olist(folder: Path, *, timezone: str = OLIST_TIMEZONE) -> Source:
    """The Olist CSV set: orders, items and reviews become purchase, delivery and review events.

    Purchases: one per order item (an order without items gets one without a product), with the item's seller,
    its freight and the order's payment kind (when the payments file is there) in `properties`.
    Approved, shipped and delivered when the data says so. An order is late when its promised day
    (order_estimated_delivery_date) ended before delivery, or ended undelivered before the
    data's last timestamp; delivery_delayed then happens at the end of the promised day.
    Reviews happen when the customer answered the survey (review_answer_timestamp):
    review_creation_date is when the survey was sent, before the rating was known.
    """
    folder = _existing(folder)
    missing = [name for name in OLIST_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise SourceError(f"{folder} is missing the Olist file(s): {', '.join(missing)}")
    def chunks() -> Iterator[Chunk]:
        yield _olist_chunk(folder, timezone)  # about 400,000 events for the full data set: one chunk

    return Source("olist", chunks())


def _olist_chunk(folder: Path, timezone: str) -> Chunk:
    problems: list[Problem] = []
    tables = {}
    for key, name in OLIST_FILES.items():
        frame, found = _read_csv(folder / name)
        frame.index = f"{name} line " + frame.index.astype("str")
        problems += [Problem(f"{name} line {p.row}", p.field, p.message) for p in found]
        tables[key] = frame
    orders, items, reviews = tables["orders"], tables["items"], tables["reviews"]
    payment = pd.Series(dtype="str")
    if (folder / OLIST_PAYMENTS).is_file():
        payments, found = _read_csv(folder / OLIST_PAYMENTS)
        problems += [Problem(f"{OLIST_PAYMENTS} line {p.row}", p.field, p.message) for p in found]
        first = payments.sort_values("payment_sequential").drop_duplicates("order_id")  # the first way it was paid
        payment = first.set_index("order_id")["payment_type"].astype("str")

    def local(table: pd.DataFrame, column: str) -> pd.Series:
        naive = pd.to_datetime(table[column], format="ISO8601", errors="coerce")
        unreadable = table[column].notna() & naive.isna()
        problems.extend(Problem(row, column, f"is not a time: {_shown(table[column][row])}")
                        for row in table.index[unreadable])
        return _local_times(naive, timezone)

    customers = tables["customers"].drop_duplicates("customer_id").set_index("customer_id")["customer_unique_id"]
    english = tables["categories"].drop_duplicates("product_category_name").set_index("product_category_name")
    products = tables["products"].drop_duplicates("product_id").set_index("product_id")["product_category_name"]
    categories = products.map(english["product_category_name_english"]).fillna(products)

    customer = orders["customer_id"].map(customers)
    bought = local(orders, "order_purchase_timestamp")
    approved = local(orders, "order_approved_at")
    shipped = local(orders, "order_delivered_carrier_date")
    delivered = local(orders, "order_delivered_customer_date")
    promised = local(orders, "order_estimated_delivery_date")
    promised_day = pd.to_datetime(orders["order_estimated_delivery_date"], format="ISO8601", errors="coerce")
    late_from = _local_times(promised_day.dt.normalize() + pd.Timedelta(days=1), timezone)
    data_end = pd.concat([bought, approved, shipped, delivered]).max()
    never = orders["order_status"].isin(OLIST_NEVER_DELIVERED)
    late = late_from.le(delivered) | (delivered.isna() & ~never & late_from.le(data_end))

    order = pd.DataFrame({"customer": customer, "bought": bought, "promised": promised}).set_axis(orders["order_id"])
    order = order[~order.index.duplicated()]
    of_items = items.join(order, on="order_id")
    of_reviews = reviews.join(order, on="order_id")

    def from_orders(kind: str, mask: pd.Series, at: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
        labels = orders.index[mask] + f" ({kind})"
        frame = _frame(labels, type=kind, **{name: values[mask].set_axis(labels) for name, values in (
            ("customer", customer), ("order_id", orders["order_id"]), ("occurred_at", at), ("promised_at", promised))})
        return frame, pd.Series("", index=labels)

    # Each part with the key that tells its events apart: the order item, the order, or the review
    # (Olist repeats review ids across orders, so a review's key is review and order).
    parts = [
        (_frame(items.index, type="purchase", customer=of_items["customer"], product=items["product_id"],
                category=items["product_id"].map(categories), price=_numbers(items["price"], "price", problems),
                quantity=1, order_id=items["order_id"], occurred_at=of_items["bought"],
                promised_at=of_items["promised"], properties=_item_properties(items, payment, problems)),
         items["order_item_id"]),
        from_orders("purchase", ~orders["order_id"].isin(items["order_id"]), bought),
        from_orders("order_approved", approved.notna(), approved),
        from_orders("order_shipped", shipped.notna(), shipped),
        from_orders("order_delivered", delivered.notna(), delivered),
        from_orders("delivery_delayed", late, late_from),
        (_frame(reviews.index, type="review", customer=of_reviews["customer"], order_id=reviews["order_id"],
                rating=_numbers(reviews["review_score"], "rating", problems),
                occurred_at=local(reviews, "review_answer_timestamp").fillna(local(reviews, "review_creation_date"))),
         reviews["review_id"]),
    ]
    events = pd.concat([frame for frame, _ in parts])
    keys = events[["type", "order_id"]].assign(detail=pd.concat([detail for _, detail in parts]))
    events["event_id"] = event_ids("olist", keys)
    return Chunk(events, rows=len(orders) + len(items) + len(reviews), problems=problems)


def _item_properties(items: pd.DataFrame, payment: pd.Series, problems: list[Problem]) -> list[dict]:
    """What a shop knows about an order line besides its price: who sells it, the freight, how it was paid."""
    freight = _numbers(items["freight_value"], "freight_value", problems)
    paid = items["order_id"].map(payment)
    out = []
    for seller, cost, kind in zip(items["seller_id"], freight, paid, strict=True):
        known = {"seller": seller if isinstance(seller, str) and seller else None,
                 "freight": None if pd.isna(cost) else float(cost), "payment": kind if isinstance(kind, str) else None}
        out.append({k: v for k, v in known.items() if v is not None})
    return out


# --- Any CSV or Parquet file with a column mapping ------------------------------------------


@dataclass(frozen=True)
class Mapping:
    """Which source column holds each event field. Give `type` (a column) or `fixed_type`."""

    customer: str
    time: str
    type: str | None = None
    fixed_type: str | None = None
    product: str | None = None
    category: str | None = None
    price: str | None = None
    quantity: str | None = None
    order_id: str | None = None
    session: str | None = None
    rating: str | None = None
    time_format: str | None = None  # strftime, "unix" for epoch seconds, or None for ISO 8601
    timezone: str = "UTC"  # of times written without an offset
    type_map: dict[str, str] = field(default_factory=dict)  # source value -> event type

    # event field -> mapping attribute (and command line option)
    FIELDS = {"customer": "customer", "occurred_at": "time", "type": "type", "product": "product",
              "category": "category", "price": "price", "quantity": "quantity", "order_id": "order_id",
              "session_id": "session", "rating": "rating"}

    def columns(self) -> dict[str, str]:
        """Event field -> source column, for the fields that are mapped."""
        return {name: getattr(self, option) for name, option in self.FIELDS.items() if getattr(self, option)}

    def check(self) -> None:
        if (self.type is None) == (self.fixed_type is None):
            raise SourceError("give either a type column (--type) or one type for every row (--fixed-type)")
        named = {*self.type_map.values(), *([self.fixed_type] if self.fixed_type else [])}
        unknown = sorted(named - set(EVENT_TYPES))
        if unknown:
            raise SourceError(f"unknown event type(s): {', '.join(unknown)}; known types: {', '.join(EVENT_TYPES)}")


def read_mapped(path: Path, mapping: Mapping, *, source: str | None = None, chunk_rows: int = CHUNK_ROWS) -> Source:
    """A CSV or Parquet file whose columns `mapping` names. Only the mapped columns are read into events.

    The source name (default: the file name without its suffix) goes into the event ids, so
    the same rows from a CSV file and a Parquet file of the same name get the same ids. A
    purchase without an order id gets one from its customer and second, as for Taobao.
    """
    mapping.check()
    path = _existing(path)
    parquet = path.suffix.lower() in (".parquet", ".pq")
    header = pq.ParquetFile(path).schema_arrow.names if parquet else list(pd.read_csv(
        path, nrows=0, encoding="utf-8-sig").columns)
    columns = mapping.columns()
    for name, column in columns.items():
        if column not in header:
            option = "--" + Mapping.FIELDS[name].replace("_", "-")
            raise SourceError(
                f"column {column!r} ({option}) is not in {path.name}; its columns are: {', '.join(header)}")
    source = source or path.stem

    wanted = list(dict.fromkeys(columns.values()))
    if parquet:
        raws = _parquet_chunks(path, wanted, chunk_rows)
        total, row_label = pq.ParquetFile(path).metadata.num_rows, "row"
    else:
        lines, quoted = _scan(path)
        raws = ((raw[wanted], problems) for raw, problems in _csv_chunks(path, chunk_rows=chunk_rows, quoted=quoted))
        total, row_label = lines - 1, "line"

    def chunks() -> Iterator[Chunk]:
        for raw, problems in raws:
            yield Chunk(_mapped_events(raw, problems, mapping, source), rows=len(raw), problems=problems)

    return Source(source, chunks(), total_rows=total, row_label=row_label)


def _parquet_chunks(path: Path, columns: list[str], chunk_rows: int) -> Iterator[tuple[pd.DataFrame, list[Problem]]]:
    first = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
        raw = batch.to_pandas()
        raw.index = pd.RangeIndex(first, first + len(raw))  # row numbers from 1
        first += len(raw)
        yield raw, []


def _mapped_events(raw: pd.DataFrame, problems: list[Problem], mapping: Mapping, source: str) -> pd.DataFrame:
    columns = mapping.columns()
    events = _frame(raw.index)
    for name in ("customer", "product", "category", "order_id", "session_id"):
        if name in columns:
            events[name] = _text(raw[columns[name]])
    events["type"] = mapping.fixed_type or _text(raw[columns["type"]]).replace(mapping.type_map)
    for name in ("price", "quantity", "rating"):
        if name in columns:
            events[name] = _numbers(raw[columns[name]], name, problems)
    events["occurred_at"] = _times(raw[columns["occurred_at"]], "occurred_at", problems,
                                   fmt=mapping.time_format, timezone=mapping.timezone)
    if "order_id" not in columns:
        bought = events["type"].eq("purchase")
        at = events["occurred_at"][bought].dt.strftime("%Y%m%dT%H%M%SZ")
        events.loc[bought, "order_id"] = events["customer"][bought] + "-" + at
    key = ["type", "customer", "product", "category", "order_id", "session_id", "price", "quantity", "rating",
           "occurred_at"]
    events["event_id"] = event_ids(source, events[key])
    return events


def _text(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
        values = values.astype("Int64")  # ids with gaps, which pandas keeps as floats: 7, not 7.0
    return values.astype("str")


def _existing(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path} does not exist")
    return path


# --- One entry point for the command and the Celery task ------------------------------------

FORMATS = ("taobao", "olist", "mapped")


def open_source(path: Path, format: str, *, mapping: dict | None = None, timezone: str | None = None,
                keep_outside_window: bool = False, source: str | None = None,
                chunk_rows: int = CHUNK_ROWS) -> Source:
    """The reader for `format`; `mapping` holds Mapping's fields for the mapped format (plain data, so it queues)."""
    if format == "taobao":
        return read_taobao(path, keep_outside_window=keep_outside_window, chunk_rows=chunk_rows)
    if format == "olist":
        return read_olist(path, timezone=timezone or OLIST_TIMEZONE)
    if format != "mapped":
        raise SourceError(f"unknown format {format!r}; known formats: {', '.join(FORMATS)}")
    mapping = dict(mapping or {})
    for required in ("customer", "time"):
        if not mapping.get(required):
            raise SourceError(f"--format mapped needs --{required} COL")
    return read_mapped(path, Mapping(**mapping, timezone=timezone or "UTC"), source=source, chunk_rows=chunk_rows)

