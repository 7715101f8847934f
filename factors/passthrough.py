"""Passthrough factors for datasets that arrive as one wide table (Hillstrom, iFood, ...).

:func:`prepare_wide` turns such a table into model-ready factors: numeric columns kept,
booleans as 0/1, categorical columns one-hot encoded, every name made safe for LightGBM
(plain ``[A-Za-z0-9_]``, see :func:`sanitize_name`) and unique.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Sequence

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from tasks.core.errors import DataValidationError

TABLE = "wide table"

_CYRILLIC = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s",
     "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya"],
))


def _transliterate(text: str) -> str:
    out = []
    for ch in text:
        low = ch.lower()
        if low in _CYRILLIC:
            lat = _CYRILLIC[low]
            out.append(lat.capitalize() if ch != low else lat)
        else:
            out.append(ch)
    return "".join(out)


def sanitize_name(name: object) -> str:
    """A column name made of ``[A-Za-z0-9_]`` only, readable and deterministic.

    Cyrillic is transliterated, accents dropped, every run of other characters becomes
    one ``_`` (leading/trailing ones removed), and a name starting with a digit gets the
    prefix ``f_``. E.g. ``"2) $100 - $200"`` -> ``"f_2_100_200"``,
    ``"education_2n Cycle"`` -> ``"education_2n_Cycle"``.
    Raises :class:`DataValidationError` when nothing usable is left (e.g. ``"$%"``).
    """
    text = unicodedata.normalize("NFKD", _transliterate(str(name)))
    text = text.encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
    if not text:
        raise DataValidationError(TABLE, str(name), "the column name has no letters or digits to keep")
    if text[0].isdigit():
        text = "f_" + text
    return text


def _value_label(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value)


def is_one_hot(series: pd.Series, name: object, categorical: Sequence[str]) -> bool:
    """Whether :func:`prepare_wide` one-hot encodes column ``name``: listed as categorical, or text."""
    return (name in categorical or pdt.is_string_dtype(series.dtype)
            or isinstance(series.dtype, pd.CategoricalDtype) or series.dtype == object)


def prepare_wide(
    df: pd.DataFrame,
    categorical: Sequence[str] | None = None,
    drop: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Model-ready factors from one wide table (a new frame; ``df`` is not modified).

    - ``drop``: columns left out (ids, targets, leaky columns); each must exist.
    - ``categorical``: columns one-hot encoded (int8 0/1, one column per value, sorted by
      value; a missing value gives all zeros). Text and categorical-dtype columns not
      listed are one-hot encoded too.
    - Boolean columns become int8 0/1; other numeric columns are kept as they are.
    - Output names are ``sanitize_name(column)`` and ``sanitize_name(f"{column}_{value}")``.

    Raises :class:`DataValidationError` for an unknown ``drop``/``categorical`` column, a
    column of an unsupported type (e.g. dates: derive numbers from them first), or two
    columns whose sanitised names collide.
    """
    drop = list(drop or [])
    categorical = list(categorical or [])
    for what, cols in (("drop", drop), ("categorical", categorical)):
        unknown = [c for c in cols if c not in df.columns]
        if unknown:
            raise DataValidationError(TABLE, str(unknown[0]),
                                      f"{what} column(s) {unknown} not in the table; it has {list(df.columns)[:20]}")
    both = set(drop) & set(categorical)
    if both:
        raise DataValidationError(TABLE, str(sorted(both)[0]), "a column is listed both to drop and as categorical")

    parts: dict[str, pd.Series] = {}
    origin: dict[str, str] = {}

    def put(name: str, series: pd.Series, source: str) -> None:
        if name in parts:
            raise DataValidationError(
                TABLE, source, f"sanitised name {name!r} collides with the one made from {origin[name]!r}; "
                "rename or drop one of them")
        parts[name] = series
        origin[name] = source

    for col in df.columns:
        if col in drop:
            continue
        s = df[col]
        if is_one_hot(s, col, categorical):
            values = s.dropna().unique()
            try:
                values = sorted(values)
            except TypeError:
                values = sorted(values, key=str)
            for v in values:
                put(sanitize_name(f"{col}_{_value_label(v)}"), (s == v).fillna(False).astype("int8"),
                    f"{col}={v!r}")
        elif pdt.is_bool_dtype(s.dtype):
            put(sanitize_name(col), s.astype("int8"), str(col))
        elif pdt.is_numeric_dtype(s.dtype):
            put(sanitize_name(col), s.copy(), str(col))
        else:
            rows = list(range(min(3, len(s))))
            raise DataValidationError(TABLE, str(col), f"unsupported dtype {s.dtype}; derive numbers from it "
                                      "or list it in drop", rows)
    if not parts:
        return pd.DataFrame(index=df.index)
    return pd.DataFrame(parts, index=df.index)
