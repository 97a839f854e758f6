"""Checking behaviour events in bulk: one frame in, the valid rows and the problems out.

Pure pandas, no database: the REST API, the file importers and the simulator all pass
their events through `clean_events`, so an event is judged by the same rules wherever it
comes from. Rows keep their frame index, so problems point at a batch position or a file
line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import orjson
import pandas as pd

from .event_types import EVENT_TYPES, REQUIRED_FIELDS

TEXT_FIELDS = ("customer", "anonymous_id", "product", "category", "order_id", "session_id")
TIME_FIELDS = ("occurred_at", "promised_at")
FIELDS = ("event_id", "type", *TEXT_FIELDS, "price", "quantity", "rating", *TIME_FIELDS, "properties")

_FIELD_SET = frozenset(FIELDS)
MAX_TEXT_LENGTH = 255
MAX_PRICE = 9_999_999_999.99  # the price column holds 12 digits, 2 of them cents
MAX_PROPERTIES_DEPTH = 16  # far below orjson's own limit (254), which would fail the whole batch
MAX_QUANTITY = 1_000_000
# A customer id is a part of the API's paths (customers/{id}/...): one with a slash could never be read or erased,
# and clients resolve "." and ".." away before they send a path.
CUSTOMER_ID_RULE = "must not contain a slash nor be '.' or '..' (it is part of the customer's API paths)"
PATH_DOTS = (".", "..")


def customer_id_problem(value: str) -> str | None:
    """Why a customer id could not be used in the API's paths, or None."""
    return CUSTOMER_ID_RULE if "/" in value or value in PATH_DOTS else None

TIME_RANGE = ("1900-01-01", "9000-01-01")  # what every store and reader here holds, time zones included
# A promised delivery lies within two years of the event that carries it (an order, or its later shipping or
# delivery, which may well come after the promise): further off, it is a typo.
PROMISE_WINDOW = pd.Timedelta(days=730)
_OFFSET = r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)$"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


@dataclass(frozen=True)
class Problem:
    row: int | str  # the frame's index label: a batch position, a file line number, or "file line N"
    field: str
    message: str


@dataclass
class CleanedEvents:
    frame: pd.DataFrame  # valid rows, canonical columns and dtypes, unique event ids
    problems: list[Problem]
    repeated: pd.Index = field(default_factory=lambda: pd.Index([]))  # valid rows whose event_id came earlier


@dataclass(frozen=True)
class Limits:
    now: datetime
    max_clock_skew: pd.Timedelta
    oldest: datetime | None = None  # refuse events older than this; None lets history in
    max_properties_bytes: int = 2048


def records_frame(records: list) -> tuple[pd.DataFrame, list[Problem]]:
    """Turn JSON events into a frame; items that are not objects or carry unknown fields are problems."""
    problems = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            problems.append(Problem(index, "event", "must be a JSON object"))
        elif unknown := record.keys() - _FIELD_SET:
            problems.extend(Problem(index, name, "is not a known field") for name in sorted(unknown))
    bad = {p.row for p in problems}
    frame = pd.DataFrame.from_records(
        [r for i, r in enumerate(records) if i not in bad], index=[i for i in range(len(records)) if i not in bad]
    )
    return frame, problems


def clean_events(frame: pd.DataFrame, limits: Limits) -> CleanedEvents:
    """Validate and normalise events. Missing columns count as empty."""
    frame = frame.reindex(columns=FIELDS)
    problems: list[Problem] = []

    def reject(mask: pd.Series | np.ndarray, name: str, message: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            problems.extend(Problem(row, name, message) for row in frame.index[mask])

    out = pd.DataFrame(index=frame.index)

    for name in ("event_id", "type", *TEXT_FIELDS):
        out[name] = _text(frame[name], name, reject)

    # An empty string is no value, and is read as none (an optional "product": "" is no product); where a value
    # is required, it is refused here, or the database would refuse the NULL and fail the whole batch.
    empty = {name: _empty(frame[name]) for name in ("event_id", "type", *TEXT_FIELDS)}
    reject(out["event_id"].isna() & frame["event_id"].isna(), "event_id", "is required")
    reject(empty["event_id"], "event_id", "must not be empty")
    is_uuid = out["event_id"].str.fullmatch(_UUID).fillna(False).astype(bool)
    reject(out["event_id"].notna() & ~is_uuid, "event_id", "must be a UUID like 0b7e9b8a-5d6f-4c1e-9a3b-2f1d4c5e6a7b")
    out["event_id"] = out["event_id"].str.lower()

    reject(out["type"].isna() & frame["type"].isna(), "type", "is required")
    reject(empty["type"], "type", "must not be empty")
    unknown = out["type"].notna() & ~out["type"].isin(EVENT_TYPES)
    reject(unknown, "type", "is not a known event type; known types: " + ", ".join(EVENT_TYPES))

    reject(out["customer"].str.contains("/", regex=False, na=False) | out["customer"].isin(PATH_DOTS), "customer",
           CUSTOMER_ID_RULE)
    # Given but refused (a slash, too long): said above already.
    nobody = (frame["customer"].isna() | empty["customer"]) & (frame["anonymous_id"].isna() | empty["anonymous_id"])
    reject(nobody & frame["customer"].isna() & frame["anonymous_id"].isna(), "customer",
           "customer or anonymous_id is required")
    reject(nobody & empty["customer"], "customer", "must not be empty: send the customer's id, or an anonymous_id")
    reject(nobody & empty["anonymous_id"], "anonymous_id", "must not be empty: send the visitor's id, or a customer")

    out["price"] = _number(frame["price"], "price", reject, minimum=0, maximum=MAX_PRICE, decimals=2)
    out["quantity"] = _number(frame["quantity"], "quantity", reject, minimum=1, maximum=MAX_QUANTITY, integer=True)
    out["rating"] = _number(frame["rating"], "rating", reject, minimum=1, maximum=5, integer=True)

    for name, needed_by in _fields_required_by_type().items():
        absent = frame[name].isna() | empty[name] if name in empty else frame[name].isna()
        reject(out["type"].isin(needed_by) & out[name].isna() & absent, name, "is required for this type")

    for name in TIME_FIELDS:
        out[name] = _time(frame[name], name, reject)
    reject(out["occurred_at"].isna() & frame["occurred_at"].isna(), "occurred_at", "is required")
    latest = pd.Timestamp(limits.now) + limits.max_clock_skew
    reject(out["occurred_at"] > latest, "occurred_at", "is in the future (check the client's clock)")
    if limits.oldest is not None:
        reject(out["occurred_at"] < pd.Timestamp(limits.oldest), "occurred_at", f"is before {limits.oldest:%Y-%m-%d}")
    far = (out["promised_at"] - out["occurred_at"]).abs() > PROMISE_WINDOW
    reject(far, "promised_at", f"must lie within {PROMISE_WINDOW.days} days of occurred_at")

    out["properties"] = _properties(frame["properties"], reject, limits.max_properties_bytes)

    bad = pd.Index({p.row for p in problems})
    valid = out.drop(index=bad)
    is_repeat = valid["event_id"].duplicated()
    repeated = valid.index[is_repeat]
    valid = valid[~is_repeat]
    problems.sort(key=lambda p: frame.index.get_loc(p.row))
    return CleanedEvents(frame=valid, problems=problems, repeated=repeated)


def _fields_required_by_type() -> dict[str, list[str]]:
    needed: dict[str, list[str]] = {}
    for event_type, names in REQUIRED_FIELDS.items():
        for name in names:
            needed.setdefault(name, []).append(event_type)
    return needed


def _empty(values: pd.Series) -> np.ndarray:
    """Which values are the empty string."""
    return values.eq("").fillna(False).to_numpy(dtype=bool)


def _text(values: pd.Series, name, reject) -> pd.Series:
    if pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values):
        text = values  # read from a file: strings already, no need to look at each value
    elif values.isna().all():
        return pd.Series(None, index=values.index, dtype="str")
    else:
        is_text = np.fromiter((isinstance(v, str) for v in values), bool, len(values))
        reject(values.notna() & ~is_text, name, "must be a string")
        text = values.where(is_text).astype("str")
    lengths = text.str.len().to_numpy(dtype="float64", na_value=0)
    too_long = lengths > MAX_TEXT_LENGTH
    reject(too_long, name, f"must be at most {MAX_TEXT_LENGTH} characters")
    nul = text.str.contains("\x00", regex=False, na=False).to_numpy(dtype=bool)  # PostgreSQL text cannot hold one
    reject(nul, name, "must not contain a NUL character")
    unusable = too_long | (lengths == 0) | nul
    return text.where(~unusable) if unusable.any() else text


def _number(values: pd.Series, name, reject, *, minimum, maximum, integer=False, decimals=None) -> pd.Series:
    dtype = "Int64" if integer else "float64"
    if values.isna().all():
        return pd.Series(np.nan, index=values.index).astype(dtype)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan, copy=True)
    else:
        # JSON gives Python objects: a bool is not a number, and neither is a numeric string.
        numbers = np.array(
            [v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in values], dtype="float64"
        )
        reject(values.notna().to_numpy() & np.isnan(numbers), name, "must be a number")
    infinite = np.isinf(numbers)
    reject(infinite, name, "must be a finite number")
    if decimals is not None:  # checked as stored: 9999999999.995 becomes 10000000000.00, one digit too many
        with np.errstate(over="ignore"):  # 1e308 in cents is infinite: out of range below, as it should be
            numbers = np.round(numbers, decimals)
    fractional = np.isfinite(numbers) & (numbers % 1 != 0) if integer else np.zeros(len(numbers), bool)
    reject(fractional, name, "must be a whole number")
    out_of_range = (numbers < minimum) | (numbers > maximum)
    reject(out_of_range, name, f"must be between {minimum} and {maximum}")
    numbers[infinite | fractional | out_of_range] = np.nan
    return pd.Series(numbers, index=values.index).astype(dtype)


def _time(values: pd.Series, name, reject) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values):
        return values.dt.tz_localize("UTC")
    if values.isna().all():
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
    if pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values):
        text = values
    else:
        is_text = np.fromiter((isinstance(v, str) for v in values), bool, len(values))
        reject(values.notna() & ~is_text, name, "must be an ISO 8601 time string")
        text = values.where(is_text).astype("str")
    has_offset = text.str.contains(_OFFSET, na=False)
    reject(text.notna() & ~has_offset, name, "must include a time zone offset, e.g. 2026-11-27T10:00:00Z")
    times = pd.to_datetime(text.where(has_offset), utc=True, format="ISO8601", errors="coerce")
    reject(has_offset & times.isna(), name, "is not a valid ISO 8601 time")
    first, last = (pd.Timestamp(t, tz="UTC") for t in TIME_RANGE)
    outside = (times < first) | (times >= last)
    reject(outside, name, f"must lie between {TIME_RANGE[0]} and {TIME_RANGE[1]} (UTC)")
    return times.where(~outside)


def _properties(values: pd.Series, reject, max_bytes: int) -> pd.Series:
    if values.isna().all():
        return pd.Series(None, index=values.index, dtype=object)
    encoded = [_encoded(v) if isinstance(v, dict) else None for v in values]
    not_an_object = np.array([not isinstance(v, dict) for v in values], dtype=bool)
    reject(values.notna().to_numpy() & not_an_object, "properties", "must be a JSON object")
    too_deep = [isinstance(v, dict) and e is None for v, e in zip(values, encoded, strict=True)]
    reject(too_deep, "properties", f"must be nested at most {MAX_PROPERTIES_DEPTH} levels deep")
    too_big = [v is not None and len(v.encode()) > max_bytes for v in encoded]
    reject(too_big, "properties", f"must be at most {max_bytes} bytes as JSON")
    nul = [v is not None and "\\u0000" in v for v in encoded]  # jsonb refuses the NUL character
    reject(nul, "properties", "must not contain a NUL character")
    return pd.Series(encoded, index=values.index, dtype=object)


def json_problem(value: dict, max_bytes: int) -> str | None:
    """What keeps a JSON object from being stored (too deep, too big, a NUL character), in words, or None."""
    encoded = _encoded(value)
    if encoded is None:
        return f"must be nested at most {MAX_PROPERTIES_DEPTH} levels deep"
    if len(encoded.encode()) > max_bytes:
        return f"must be at most {max_bytes} bytes as JSON"
    return "must not contain a NUL character" if "\\u0000" in encoded else None


def _encoded(value: dict) -> str | None:
    """The properties as JSON, or None when they are nested deeper than MAX_PROPERTIES_DEPTH.

    A level is an object or a list: the properties object itself is the first, and a number or a text inside the
    sixteenth is no seventeenth."""
    def depth(node, level: int) -> int:
        if not isinstance(node, dict | list):
            return level - 1
        if level > MAX_PROPERTIES_DEPTH:
            return level
        children = node.values() if isinstance(node, dict) else node
        return max((depth(child, level + 1) for child in children), default=level)

    return None if depth(value, 1) > MAX_PROPERTIES_DEPTH else orjson.dumps(value).decode()
