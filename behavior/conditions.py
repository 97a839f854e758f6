"""Audience conditions: JSON rule trees, validated and compiled (never eval-ed) to a vectorized mask.

A tree is `{"all": [...]}`, `{"any": [...]}`, `{"not": {...}}` or a leaf
`{"field": "score.purchase_intent", "op": "gte", "value": 0.7}`. `parse(tree)` checks it against the
field registry and the operators and returns a `Condition`, which evaluates it over a DataFrame, one row
per customer and one column per field name (`mask`), and says it in words (`describe`).

Missing values (NaN, None, NaT, no score) make every comparison False, `ne` and `not_in` included;
`is_null` tests for them, and `not` negates its whole subtree.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.core.exceptions import ValidationError
from django.db.models import Case, F, Q, TextField, When
from django.db.models.expressions import Combinable, Expression
from django.db.models.fields.json import KT

from .core.features import FEATURES, meaning
from .models import Target

MAX_DEPTH = 8
MAX_NODES = 200
MAX_LIST = 500  # values of one in/not_in: an audience rule, not a customer list
MAX_DAYS = 36_600  # about a century: keeps `now - days` inside the calendar

NUMBER, BOOLEAN, STRING, DATETIME = "number", "boolean", "string", "datetime"


class ConditionError(ValueError):
    """A tree that is not a valid condition; `path` names the bad node, like `all[2].any[0].value`."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True)
class Field:
    """A value a condition can test. Where it comes from: a stored score, an SQL expression over
    Customer (read by behavior.selectors.condition_frame), or a column of behavior.core.features.build_features."""

    name: str
    type: str
    label: str
    score: str | None = None
    sql: Combinable | None = None
    feature: str | None = None


def _attribute(key: str) -> Expression:
    """A key of Customer.attributes as text, NULL when absent or JSON null (on SQLite, KT alone gives 'null')."""
    return Case(When(Q(**{f"attributes__{key}": None}), then=None), default=KT(f"attributes__{key}"),
                output_field=TextField())


# Besides these, `score.<target>` for every target the shop defines (behavior.models.Target): see field_named.
FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        *(Field(f"feature.{n}", NUMBER, meaning(n), feature=n) for n in FEATURES),
        Field("customer.marketing_consent", BOOLEAN, "marketing consent", sql=F("marketing_consent")),
        Field("customer.created_at", DATETIME, "sign-up", sql=F("created_at")),
        Field("customer.country", STRING, "country", sql=_attribute("country")),
        Field("customer.device", STRING, "device", sql=_attribute("device")),
        Field("customer.days_since_last_purchase", NUMBER, "days since the last purchase",
              feature="days_since_purchase"),
    )
}


def _score_field(target: str) -> Field:
    return Field(f"score.{target}", NUMBER, f"{target.replace('_', ' ')} score", score=target)


def field_named(name: str) -> Field:
    """The field of a condition that parsed: a score field of any target, or one of FIELDS."""
    return _score_field(name.removeprefix("score.")) if name.startswith("score.") else FIELDS[name]


def known_fields() -> dict[str, Field]:
    """Every field a condition may use now: a score per defined target, then FIELDS."""
    targets = Target.objects.order_by("name").values_list("name", flat=True)
    return {**{f.name: f for f in map(_score_field, targets)}, **FIELDS}


def _since(days: float, now: datetime) -> datetime:
    return now - timedelta(days=days)


def _window(days: float, now: datetime) -> tuple[datetime, datetime]:
    """Within the last `days`: from `now - days` to `now`, both included (later moments are not in the past)."""
    return _since(days, now), now


@dataclass(frozen=True)
class Operator:
    """`test` compares a NumPy array to the operand (is_null has none: it reads the missing flag, see Leaf).

    `value` is the kind of value the operator takes: "one", "pair", "list", "flag" or "days".
    Relative operators turn their days and `now` into the operand when evaluated.
    """

    types: frozenset[str]
    value: str
    words: str
    test: Callable[[np.ndarray, Any], np.ndarray] | None
    relative: Callable[[float, datetime], Any] | None = None


def _between(x: np.ndarray, bounds: tuple) -> np.ndarray:
    return (x >= bounds[0]) & (x <= bounds[1])


def _isin(x: np.ndarray, values: list) -> np.ndarray:
    # pandas hashes (fast on millions of numbers) but costs ~100 us to set up; NumPy is quicker on a few values.
    return pd.Index(x).isin(values) if len(x) > 10_000 else np.isin(x, values)


_ANY = frozenset({NUMBER, BOOLEAN, STRING, DATETIME})
_ORDERED = frozenset({NUMBER, DATETIME})
_LISTED = frozenset({NUMBER, STRING})

OPERATORS: dict[str, Operator] = {
    "eq": Operator(_ANY, "one", "=", operator.eq),
    "ne": Operator(_ANY, "one", "≠", operator.ne),
    "lt": Operator(_ORDERED, "one", "<", operator.lt),
    "lte": Operator(_ORDERED, "one", "≤", operator.le),
    "gt": Operator(_ORDERED, "one", ">", operator.gt),
    "gte": Operator(_ORDERED, "one", "≥", operator.ge),
    "between": Operator(_ORDERED, "pair", "between", _between),
    "in": Operator(_LISTED, "list", "is one of", _isin),
    "not_in": Operator(_LISTED, "list", "is none of", lambda x, v: ~_isin(x, v)),
    "is_null": Operator(_ANY, "flag", "is unknown", None),
    "within_last": Operator(frozenset({DATETIME}), "days", "within the last", _between, relative=_window),
    "not_within_last": Operator(frozenset({DATETIME}), "days", "not within the last", operator.lt,
                                relative=_since),
}


# Evaluation works on columns made uniform per type: values as a NumPy array plus a missing flag.
# Strings are factorized: each row holds a code into the distinct values, so tests run once per value.
@dataclass(frozen=True)
class _Column:
    values: np.ndarray
    missing: np.ndarray
    codes: np.ndarray | None = None


def _column(series: pd.Series, type_: str) -> _Column:
    if type_ == NUMBER:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return _Column(values, np.isnan(values))
    if type_ == BOOLEAN:
        missing = series.isna().to_numpy()
        return _Column(series.to_numpy(dtype=bool, na_value=False), missing)
    if type_ == DATETIME:
        utc = pd.to_datetime(series, utc=True).dt.tz_localize(None)
        values = utc.to_numpy().astype("datetime64[us]")
        return _Column(values, np.isnat(values))
    codes, distinct = pd.factorize(series)
    return _Column(np.asarray(distinct, dtype=object), codes < 0, codes)


def _numpy(value: Any) -> Any:
    """An operand as NumPy compares it: datetimes become naive UTC datetime64."""
    if isinstance(value, datetime):
        return np.datetime64(value.astimezone(UTC).replace(tzinfo=None), "us")
    if isinstance(value, tuple):
        return tuple(_numpy(v) for v in value)
    return value


@dataclass(frozen=True)
class Leaf:
    field: Field
    op: str
    value: Any

    def operand(self, now: datetime) -> Any:
        relative = OPERATORS[self.op].relative
        return relative(self.value, now) if relative else self.value

    def mask(self, columns: Mapping[str, _Column], now: datetime) -> np.ndarray:
        column = columns[self.field.name]
        if self.op == "is_null":
            return column.missing if self.value else ~column.missing
        test = OPERATORS[self.op].test
        assert test is not None  # is_null, the one operator without, is answered above
        hit = np.asarray(test(column.values, _numpy(self.operand(now))), dtype=bool)
        if column.codes is not None:
            hit = np.append(hit, False)[column.codes]  # a missing row's code is -1: the appended False
        return hit & ~column.missing

    def describe(self) -> str:
        words, label = OPERATORS[self.op].words, self.field.label
        match OPERATORS[self.op].value:
            case "flag":
                return f"{label} {words}" if self.value else f"{label} is known"
            case "pair":
                return f"{label} between {_words(self.value[0])} and {_words(self.value[1])}"
            case "list":
                return f"{label} {words} {', '.join(_words(v) for v in self.value)}"
            case "days":
                return f"{label} {words} {_words(self.value)} days"
        return f"{label} {words} {_words(self.value)}"


@dataclass(frozen=True)
class Group:
    kind: str  # "all" or "any"
    children: tuple[Node, ...]

    def mask(self, columns: Mapping[str, _Column], now: datetime) -> np.ndarray:
        combine = np.logical_and if self.kind == "all" else np.logical_or
        return combine.reduce([child.mask(columns, now) for child in self.children])

    def describe(self) -> str:
        joiner = " and " if self.kind == "all" else " or "
        return joiner.join(f"({c.describe()})" if isinstance(c, Group) else c.describe() for c in self.children)


@dataclass(frozen=True)
class Not:
    child: Node

    def mask(self, columns: Mapping[str, _Column], now: datetime) -> np.ndarray:
        return ~self.child.mask(columns, now)

    def describe(self) -> str:
        return f"not ({self.child.describe()})"


Node = Leaf | Group | Not


def _words(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, datetime):
        return value.isoformat()
    return f'"{value}"'


@dataclass(frozen=True)
class Condition:
    """A validated condition; `fields` are the field names it reads, in order of first use."""

    root: Node
    fields: tuple[str, ...]

    def mask(self, frame: pd.DataFrame, now: datetime) -> np.ndarray:
        """Which rows match: `frame` has a column per field name, NaN/None/NaT where a value is missing."""
        absent = [name for name in self.fields if name not in frame.columns]
        if absent:
            raise KeyError(f"the frame lacks the columns {', '.join(absent)}")
        columns = {name: _column(frame[name], field_named(name).type) for name in self.fields}
        return self.root.mask(columns, _aware(now))

    def describe(self) -> str:
        return self.root.describe()


def parse(tree: Any, *, targets: Collection[str] | None = None) -> Condition:
    """Validates a JSON tree and compiles it; raises ConditionError naming the first bad node.

    `score.<target>` fields must name one of `targets` when given (what the shop defines: validate_condition);
    without, any target name is taken, and a target nobody scores reads as missing.
    """
    state: dict[str, Any] = {"nodes": 0, "targets": targets}
    fields: dict[str, None] = {}  # an ordered set
    root = _node(tree, "", 1, state, fields)
    return Condition(root, tuple(fields))


def validate_condition(tree: Any) -> None:
    """A model field validator: a condition that does not parse is refused, naming its bad node."""
    try:
        parse(tree, targets=set(Target.objects.values_list("name", flat=True)))
    except ConditionError as error:
        raise ValidationError(str(error)) from error


def _node(tree: Any, path: str, depth: int, state: dict[str, Any], fields: dict[str, None]) -> Node:
    if depth > MAX_DEPTH:
        raise ConditionError(path, f"nested deeper than {MAX_DEPTH} levels")
    state["nodes"] += 1
    if state["nodes"] > MAX_NODES:
        raise ConditionError(path, f"more than {MAX_NODES} nodes")
    if not isinstance(tree, dict):
        raise ConditionError(path, "expected an object with all, any, not, or field, op and value")
    kinds = [k for k in ("all", "any", "not") if k in tree]
    if kinds:
        if len(tree) != 1:
            raise ConditionError(path, f"{kinds[0]} must be the only key of its object")
        kind = kinds[0]
        inner = _join(path, kind)
        if kind == "not":
            return Not(_node(tree[kind], inner, depth + 1, state, fields))
        children = tree[kind]
        if not isinstance(children, list) or not children:
            raise ConditionError(inner, "expected a non-empty list of conditions")
        return Group(kind, tuple(_node(c, f"{inner}[{i}]", depth + 1, state, fields) for i, c in enumerate(children)))
    unknown = sorted(set(tree) - {"field", "op", "value"})
    if unknown:
        raise ConditionError(path, f"unknown keys {', '.join(unknown)}; a leaf has field, op and value")
    for key in ("field", "op", "value"):
        if key not in tree:
            raise ConditionError(_join(path, key), "missing")
    leaf = _leaf(tree, path, state["targets"])
    fields[leaf.field.name] = None
    return leaf


def _leaf(tree: dict, path: str, targets: Collection[str] | None) -> Leaf:
    name, op = tree["field"], tree["op"]
    field = FIELDS.get(name) if isinstance(name, str) else None
    if field is None and isinstance(name, str) and name.startswith("score."):
        target = name.removeprefix("score.")
        if target in targets if targets is not None else target.replace("_", "").isalnum():
            field = _score_field(target)
    if field is None:
        known = [*(f"score.{t}" for t in sorted(targets or ())), *FIELDS]
        raise ConditionError(_join(path, "field"), f"unknown field {name!r}; known: {', '.join(known)}")
    if not isinstance(op, str) or op not in OPERATORS:
        raise ConditionError(_join(path, "op"), f"unknown operator {op!r}; known: {', '.join(OPERATORS)}")
    spec = OPERATORS[op]
    if field.type not in spec.types:
        allowed = ", ".join(o for o, s in OPERATORS.items() if field.type in s.types)
        raise ConditionError(_join(path, "op"), f"{op} does not apply to {field.type} field {name}; use {allowed}")
    return Leaf(field, op, _value(tree["value"], spec.value, field.type, _join(path, "value")))


def _value(value: Any, kind: str, type_: str, path: str) -> Any:
    if kind == "flag":
        if not isinstance(value, bool):
            raise ConditionError(path, "expected true or false")
        return value
    if kind == "days":
        days = _scalar(value, NUMBER, path)
        if not 0 <= days <= MAX_DAYS:
            raise ConditionError(path, f"expected a number of days from 0 to {MAX_DAYS}")
        return days
    if kind == "one":
        return _scalar(value, type_, path)
    if not isinstance(value, list):
        raise ConditionError(path, "expected a list [low, high]" if kind == "pair" else "expected a list")
    values = [_scalar(v, type_, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind == "pair":
        if len(values) != 2:
            raise ConditionError(path, "expected a list [low, high]")
        if values[0] > values[1]:
            raise ConditionError(path, "low is above high")
        return tuple(values)
    if not 1 <= len(values) <= MAX_LIST:
        raise ConditionError(path, f"expected a list of 1 to {MAX_LIST} values")
    return values


def _scalar(value: Any, type_: str, path: str) -> Any:
    if type_ == NUMBER:
        # bool is an int to Python, not a number to a rule writer; floats keep big ints out of SQL.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if math.isfinite(number):
                return number
        raise ConditionError(path, "expected a finite number")
    if type_ == BOOLEAN:
        if isinstance(value, bool):
            return value
        raise ConditionError(path, "expected true or false")
    if type_ == STRING:
        if isinstance(value, str):
            return value
        raise ConditionError(path, "expected a string")
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConditionError(path, "expected an ISO 8601 date and time with a time zone, like 2026-01-31T00:00:00Z")
    return moment


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def feature_columns(features: pd.DataFrame, fields: Iterable[str]) -> pd.DataFrame:
    """The feature-based fields among `fields`, as columns named by field, from a build_features frame."""
    chosen = [f for f in map(field_named, fields) if f.feature]
    return pd.DataFrame({f.name: features[f.feature] for f in chosen}, index=features.index)
