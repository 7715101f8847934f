"""Binary columns as users write them: 0/1, booleans, yes/no, true/false, or named values.

* :func:`token` - one cell as a lower-case string ("1" for 1, 1.0 and True; None when empty),
  the common ground on which values from CSV text, numbers and booleans are compared;
* :func:`code_target` - a target column as 0/1 (``positive`` names the value counted as 1);
* :func:`code_arms` - a treatment column as 1 (treated) / 0 (control), rows of excluded arms
  marked for removal.

Each names the column, its values and their counts when it cannot decide.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from tasks.core.errors import ConfigError, DataValidationError

TRUE_TOKENS = frozenset({"1", "true", "yes", "y", "t"})
FALSE_TOKENS = frozenset({"0", "false", "no", "n", "f"})
TREATED_TOKENS = TRUE_TOKENS | {"treated", "treatment"}
CONTROL_TOKENS = FALSE_TOKENS | {"control"}
_SHOW = 8


def token(value: Any) -> str | None:
    """A cell as a lower-case string ("1" for 1, 1.0 and True); None when empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip().lower()
    return text or None


def value_counts(s: pd.Series) -> str:
    """``'yes' x 5,289, 'no' x 39,922`` (most frequent first, a few values)."""
    counts = s.value_counts(dropna=False)
    shown = ", ".join(f"{v!r} x {n:,}" for v, n in counts.head(_SHOW).items())
    return shown + (f", ... ({len(counts)} values)" if len(counts) > _SHOW else "")


def _tokens(s: pd.Series) -> pd.Series:
    values = s.dropna().unique()
    mapping = {v: token(v) for v in values}
    return s.map(mapping)


def _empty(s: pd.Series, tokens: pd.Series, table: str, column: str, what: str) -> None:
    empty = tokens.isna().to_numpy()
    if empty.any():
        rows = list(np.flatnonzero(empty)[:5])
        raise DataValidationError(table, column, f"{int(empty.sum())} empty {what} value(s) of {len(s):,}; drop "
                                  "those rows from the file (an outcome or an arm cannot be guessed)", rows)


def code_target(s: pd.Series, positive: Any, table: str, column: str) -> np.ndarray:
    """0/1 (int8) of a target column.

    Without ``positive`` the column must be 0/1, boolean, yes/no, true/false, y/n or t/f (any
    case); with it, that value is 1 and every other value 0. Empty cells, an unknown
    ``positive`` or a column that is not binary are one error naming the values and counts.
    """
    tokens = _tokens(s)
    _empty(s, tokens, table, column, "target")
    if positive is not None:
        pos = token(positive)
        hit = (tokens == pos).to_numpy()
        if not hit.any():
            raise ConfigError(f"config 'data', key 'positive': {positive!r} is not a value of the target column "
                              f"{column!r} of table '{table}'; its values are {value_counts(s)}")
        return hit.astype(np.int8)
    is_true, is_false = tokens.isin(TRUE_TOKENS).to_numpy(), tokens.isin(FALSE_TOKENS).to_numpy()
    if not (is_true | is_false).all():
        raise DataValidationError(table, column, f"the target is not binary: values {value_counts(s)}; name the "
                                  "value that counts as 1 with data.positive=<value> (the others count as 0)")
    return is_true.astype(np.int8)


def code_arms(s: pd.Series, treated: Any, control: Any, exclude: Sequence[Any], table: str,
              column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(arm, keep)`` of a treatment column: arm 1 treated / 0 control (int8), ``keep`` False
    for the rows of an arm listed in ``exclude``.

    ``treated`` / ``control`` name the values of each arm (strings or numbers); when neither
    is given, 1/true/yes/treated/treatment are treated and 0/false/no/control control; when
    only one is given, the one remaining value is the other arm. Any other value, or an empty
    cell, is one error naming the values and their counts and the keys that fix it.
    """
    tokens = _tokens(s)
    _empty(s, tokens, table, column, "treatment")
    excluded = {token(v) for v in (exclude or [])}
    keep = ~tokens.isin(excluded).to_numpy()
    present = set(tokens[keep].unique())
    hint = (f"name the arms with data.treated=<value> and data.control=<value>, and list other arms in "
            f"data.exclude_arms=[<value>]")
    if treated is None and control is None:
        t_set, c_set = TREATED_TOKENS, CONTROL_TOKENS
    elif treated is not None and control is not None:
        t_set, c_set = {token(treated)}, {token(control)}
    else:
        given = token(treated if treated is not None else control)
        rest = sorted(present - {given})
        if len(rest) != 1:
            raise DataValidationError(table, column, f"cannot tell the other arm from {given!r}: values "
                                      f"{value_counts(s)}; {hint}")
        t_set, c_set = ({given}, set(rest)) if treated is not None else (set(rest), {given})
    for key, wanted in (("treated", t_set), ("control", c_set)):
        value = treated if key == "treated" else control
        if value is not None and not (wanted & present):
            raise ConfigError(f"config 'data', key '{key}': {value!r} is not a value of the treatment column "
                              f"{column!r} of table '{table}'; its values are {value_counts(s)}")
    is_t, is_c = tokens.isin(t_set).to_numpy(), tokens.isin(c_set).to_numpy()
    other = keep & ~is_t & ~is_c
    if other.any():
        unknown = value_counts(s[other])
        every = value_counts(s)
        shown = unknown if unknown == every else f"{unknown} (all values: {every})"
        raise DataValidationError(table, column, f"{int(other.sum()):,} row(s) in an arm that is neither treated "
                                  f"nor control: {shown}; {hint}", list(np.flatnonzero(other)[:5]))
    return is_t.astype(np.int8), keep
