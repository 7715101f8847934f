"""Checking client factor values sent to /predict against the champion's feature schema.

The champion's metadata lists ``features`` and ``feature_dtypes``. A request row is a JSON
object with one value per feature (and optionally ``client_id``). The functions here turn a
list of such rows into a float matrix in the model's feature order, or raise
:class:`~api.errors.ApiError` (422) naming the first offending field, e.g.
``clients[3].recency_days``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from api.errors import ApiError

CLIENT_ID = "client_id"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class FeatureSchema:
    """Feature names in model order and the kind of value each accepts.

    ``kinds[name]`` is ``"float"``, ``"int"``, ``"bool"`` or ``"category"``.
    """

    features: tuple[str, ...]
    kinds: Mapping[str, str]

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


def schema_from_metadata(metadata: Mapping[str, Any]) -> FeatureSchema:
    """Build the schema from a registry version's metadata (``features``, ``feature_dtypes``)."""
    features = tuple(str(f) for f in metadata.get("features", []))
    dtypes = metadata.get("feature_dtypes") or {}
    return FeatureSchema(features, {f: dtype_kind(dtypes.get(f)) for f in features})


def _type_name(value: Any) -> str:
    return "null" if value is None else {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), type(value).__name__)


def check_value(value: Any, kind: str, where: str) -> None:
    """Raise a 422 naming ``where`` unless ``value`` suits a feature of ``kind``."""
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
                if not bad.any():
                    return ids, mat
        for i, r in enumerate(table):  # slow path: find and name the offending value
            for f, v in zip(schema.features, r):
                check_value(v, schema.kinds[f], f"clients[{i}].{f}")
        return ids, np.array([[float(v) for v in r] for r in table], dtype=np.float64).reshape(len(table), n_feat)
    for i, r in enumerate(table):
        for f, v in zip(schema.features, r):
            check_value(v, schema.kinds[f], f"clients[{i}].{f}")
    return ids, {f: [r[j] for r in table] for j, f in enumerate(schema.features)}
