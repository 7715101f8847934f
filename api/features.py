"""Checking client factor values sent to /predict against the champion's feature schema.

The champion's metadata lists ``features`` and ``feature_dtypes``. A request row is a JSON
object with one value per feature (and optionally ``client_id``). The functions here turn a
list of such rows into a float matrix in the model's feature order, or raise
:class:`~api.errors.ApiError` (422) naming the first offending field, e.g.
``clients[3].recency_days``.

Plausible ranges: the metadata's training ``reference`` gives each numeric feature's smallest
and largest training value (the first and last quantile edge, else the reference sample's
extremes; for a feature with two values, its values). A value further than :data:`RANGE_WIDTHS` widths beyond that range (the width
being the range, or the largest magnitude when that is bigger, at least 1) is refused, and so
is a negative value for a feature never negative in training. The band is wide on purpose:
clients beyond the training range exist (a tree model scores them like the edge of the
range), while a value thousands of widths out is a unit mix-up or garbage (``1e30``).
Integer features are also held to the 64-bit range the model casts them to.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from api.errors import ApiError

CLIENT_ID = "client_id"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
RANGE_WIDTHS = 10.0


@dataclass(frozen=True)
class FeatureSchema:
    """Feature names in model order and the kind of value each accepts.

    ``kinds[name]`` is ``"float"``, ``"int"``, ``"bool"`` or ``"category"``; ``bounds[name]``
    the plausible (low, high) of a numeric feature (absent: any finite value).
    """

    features: tuple[str, ...]
    kinds: Mapping[str, str]
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    low: np.ndarray = field(init=False, repr=False, compare=False)
    high: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        edges = [self.bounds.get(f, (-np.inf, np.inf)) for f in self.features]
        object.__setattr__(self, "low", np.array([e[0] for e in edges], dtype=np.float64))
        object.__setattr__(self, "high", np.array([e[1] for e in edges], dtype=np.float64))

    @property
    def numeric(self) -> bool:
        """True when every feature can live in one float matrix (no categoricals)."""
        return all(k != "category" for k in self.kinds.values())


def dtype_kind(dtype: str | None) -> str:
    """Map a pandas dtype name from metadata to the kind of JSON value accepted."""
    d = (dtype or "float64").lower()
    if d.startswith("bool"):
        return "bool"
    if d.startswith(("int", "uint")):
        return "int"
    if d.startswith(("float", "double")) or d in ("number", "numeric"):
        return "float"
    if d in ("category", "object", "string", "str") or d.startswith("string"):
        return "category"
    return "float"


def _training_range(ref: Any) -> tuple[float, float] | None:
    """(smallest, largest) training value of a feature from its drift reference (quantile edges,
    else the reference sample), or None."""
    if not isinstance(ref, Mapping):
        return None
    if ref.get("kind") == "numeric":
        values = ref.get("edges") or ref.get("sample") or []
    else:  # two-valued numeric features are kept as value shares, e.g. {"0": 0.9, "1": 0.1}
        values = list((ref.get("shares") or {}).keys())
    try:
        nums = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    nums = [v for v in nums if math.isfinite(v)]
    return (min(nums), max(nums)) if nums else None


def plausible_bounds(lo: float, hi: float, widths: float = RANGE_WIDTHS) -> tuple[float, float]:
    """The accepted band around a training range [lo, hi] (see the module docstring)."""
    width = max(hi - lo, abs(lo), abs(hi), 1.0)
    low = lo - widths * width
    return (0.0 if lo >= 0 else low), hi + widths * width


def schema_from_metadata(metadata: Mapping[str, Any]) -> FeatureSchema:
    """Build the schema from a registry version's metadata (``features``, ``feature_dtypes``,
    and the training ``reference`` for plausible ranges)."""
    features = tuple(str(f) for f in metadata.get("features", []))
    dtypes = metadata.get("feature_dtypes") or {}
    kinds = {f: dtype_kind(dtypes.get(f)) for f in features}
    reference = metadata.get("reference") or {}
    bounds: dict[str, tuple[float, float]] = {}
    for f in features:
        if kinds[f] in ("float", "int") and isinstance(reference, Mapping):
            seen = _training_range(reference.get(f))
            if seen is not None:
                bounds[f] = plausible_bounds(*seen)
        if kinds[f] == "int":
            lo, hi = bounds.get(f, (INT64_MIN, INT64_MAX))
            bounds[f] = (max(lo, INT64_MIN), min(hi, INT64_MAX))
    return FeatureSchema(features, kinds, bounds)


def _type_name(value: Any) -> str:
    return "null" if value is None else {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), type(value).__name__)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def check_value(value: Any, kind: str, where: str, bounds: tuple[float, float] | None = None) -> None:
    """Raise a 422 naming ``where`` unless ``value`` suits a feature of ``kind`` within ``bounds``."""
    if value is None:
        raise ApiError(422, "invalid_value", f"{where}: value is null; send a {kind} value", where)
    if kind == "category":
        if not isinstance(value, str):
            raise ApiError(422, "invalid_type", f"{where}: expected a string, got {_type_name(value)}", where)
        return
    if kind == "bool":
        if isinstance(value, bool) or (type(value) is int and value in (0, 1)):
            return
        raise ApiError(422, "invalid_type", f"{where}: expected true/false, got {_type_name(value)} {value!r}", where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(422, "invalid_type", f"{where}: expected a number, got {_type_name(value)} {value!r}"[:300], where)
    if isinstance(value, int) and abs(value) > 2**1000:
        raise ApiError(422, "invalid_value", f"{where}: integer is too large", where)
    if isinstance(value, float) and not math.isfinite(value):
        raise ApiError(422, "invalid_value", f"{where}: value {value!r} is not a finite number", where)
    if kind == "int" and isinstance(value, float) and not value.is_integer():
        raise ApiError(422, "invalid_type", f"{where}: expected an integer, got {value!r}", where)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        shown = _fmt(float(value)) if abs(value) < 2**1000 else "a huge number"
        source = ("the 64-bit integer range" if tuple(bounds) == (INT64_MIN, INT64_MAX) else
                  f"the plausible range [{_fmt(bounds[0])}, {_fmt(bounds[1])}] derived from the training data")
        raise ApiError(422, "implausible_value", f"{where}: {shown} is outside {source}; check the units", where)


def check_client_id(value: Any, where: str) -> int | None:
    """A client id is an integer in the int64 range, or absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(422, "invalid_type", f"{where}: client_id must be an integer, got {_type_name(value)}", where)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ApiError(422, "invalid_value", f"{where}: client_id {value} is outside the 64-bit integer range", where)
    return value


def _check_keys(row: Mapping[str, Any], schema: FeatureSchema, i: int) -> None:
    unknown = [k for k in row if k != CLIENT_ID and k not in schema.kinds]
    if unknown:
        shown = list(schema.features[:20])
        raise ApiError(
            422, "unknown_field",
            f"clients[{i}].{unknown[0]}: unknown field {unknown[0]!r}; the model expects client_id and "
            f"the features {shown}" + (" ..." if len(schema.features) > 20 else ""),
            f"clients[{i}].{unknown[0]}",
        )
    for f in schema.features:
        if f not in row:
            raise ApiError(422, "missing_feature", f"clients[{i}].{f}: feature {f!r} is missing", f"clients[{i}].{f}")


def rows_to_values(
    rows: Sequence[Mapping[str, Any]], schema: FeatureSchema
) -> tuple[list[int | None], np.ndarray | dict[str, list[Any]]]:
    """Validate request rows and return (client ids, feature values).

    For an all-numeric schema the values are a float64 matrix (rows x features, model
    order); otherwise a dict of column lists (for a DataFrame with categoricals).
    Raises :class:`ApiError` 422 naming the first unknown, missing or mistyped field.
    """
    n_feat = len(schema.features)
    ids: list[int | None] = []
    table: list[list[Any]] = []
    for i, row in enumerate(rows):
        cid = row.get(CLIENT_ID)
        ids.append(check_client_id(cid, f"clients[{i}].client_id") if cid is not None else None)
        if len(row) - (CLIENT_ID in row) != n_feat:
            _check_keys(row, schema, i)
        try:
            table.append([row[f] for f in schema.features])
        except KeyError:
            _check_keys(row, schema, i)
            raise  # pragma: no cover - _check_keys always raises here
    if schema.numeric:
        allowed = (int, float)
        kinds = [schema.kinds[f] for f in schema.features]
        quick = all(type(v) in allowed for r in table for v in r) and "bool" not in kinds
        if quick:
            try:
                mat = np.array(table, dtype=np.float64).reshape(len(table), n_feat)
            except OverflowError:  # an integer too large for float64 is impossible; be safe
                quick = False
            else:
                bad = ~np.isfinite(mat)
                int_cols = [j for j, k in enumerate(kinds) if k == "int"]
                if int_cols:
                    sub = mat[:, int_cols]
                    bad[:, int_cols] |= np.isfinite(sub) & (sub != np.round(sub))
                bad |= (mat < schema.low) | (mat > schema.high)
                if not bad.any():
                    return ids, mat
        for i, r in enumerate(table):  # slow path: find and name the offending value
            for f, v in zip(schema.features, r):
                check_value(v, schema.kinds[f], f"clients[{i}].{f}", schema.bounds.get(f))
        return ids, np.array([[float(v) for v in r] for r in table], dtype=np.float64).reshape(len(table), n_feat)
    for i, r in enumerate(table):
        for f, v in zip(schema.features, r):
            check_value(v, schema.kinds[f], f"clients[{i}].{f}", schema.bounds.get(f))
    return ids, {f: [r[j] for r in table] for j, f in enumerate(schema.features)}
