"""Outcomes of a frozen campaign as they come back: the responses file, read, checked and joined.

The file is CSV (any separator; detected) or Parquet, one row per client with an outcome record:

- ``client_id`` (required): a client of the campaign, at most one row each;
- ``response`` (required): 0/1, true/false or yes/no; with ``positive`` set (e.g. ``"yes"``,
  ``"purchase"``) that value counts as 1 and the one other value as 0;
- ``revenue`` (optional): money in the response window, >= 0; an empty cell of a
  non-responder counts as 0. Without the column the revenue comparisons are left out;
- ``delivered`` (optional): 0/1 (true/false, yes/no) for offered clients: did the offer reach
  them? Empty = not known.

Bad rows (a client id that is not in the campaign, the same client twice, a response that is
not binary, an empty response, a negative revenue) stop the run with one line naming the
offending rows of the file (CSV line numbers counting the header as line 1, Parquet row
numbers from 1) and their client ids.

Clients of the campaign without a row have an unknown outcome. How they enter the estimate is
``missing_responses`` (see :data:`MISSING_POLICIES`): ``observed`` (default) analyses the
clients with an outcome record; ``non_responder`` counts a missing row as response 0,
revenue 0 (for a file that lists only responders); ``error`` refuses any missing row.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.errors import ConfigError, DataValidationError, NotFoundError
from tasks.data.coding import FALSE_TOKENS as _FALSE
from tasks.data.coding import TRUE_TOKENS as _TRUE
from tasks.data.coding import token as _token

#: How campaign clients without an outcome record enter the evaluation.
MISSING_POLICIES = ("observed", "non_responder", "error")
COLUMNS = ("client_id", "response", "revenue", "delivered")
_SHOW = 5


class _Source:
    """Where a row of the responses came from, for error messages."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.csv = path is not None and path.suffix.lower() not in (".parquet", ".pq") and not path.is_dir()

    def rows(self, positions: np.ndarray) -> str:
        pos = np.asarray(positions)[:_SHOW]
        if self.csv:
            where = f"line(s) {', '.join(str(int(p) + 2) for p in pos)} of {self.path.name}"
        elif self.path is not None:
            where = f"row(s) {', '.join(str(int(p) + 1) for p in pos)} of {self.path.name}"
        else:
            where = f"row(s) {', '.join(str(int(p) + 1) for p in pos)}"
        return where + (" ..." if len(positions) > _SHOW else "")


def _fail(src: _Source, column: str, problem: str, positions: np.ndarray, ids: Any, hint: str = "") -> None:
    ids = [i.item() if hasattr(i, "item") else i for i in list(ids)[:_SHOW]]
    more = " ..." if len(positions) > _SHOW else ""
    msg = f"{len(positions)} {problem} at {src.rows(positions)} (client ids {ids}{more})"
    raise DataValidationError("responses", column, msg + (f"; {hint}" if hint else ""))


def read_responses_file(path: str | Path) -> pd.DataFrame:
    """The responses file as read, every column as text for CSV (parsed by :func:`parse_responses`).

    Missing file: :class:`NotFoundError` with the commands that make or name one.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(
            f"table 'responses': file {path} does not exist; simulate responses with "
            "`python -m flows.simulate_responses campaign_id=<id>` or pass responses=<path to a CSV or Parquet file>"
        )
    if path.suffix.lower() in (".parquet", ".pq") or path.is_dir():
        return pd.read_parquet(path)
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        try:
            return pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=True)
        except pd.errors.EmptyDataError:
            raise DataValidationError("responses", None, f"the file {path} is empty") from None
    raise DataValidationError("responses", None, f"unsupported file type {path.suffix!r} ({path}); use .csv or .parquet")


def _binary(raw: pd.Series, src: _Source, ids: np.ndarray, column: str, positive: Any = None,
            allow_empty: bool = False) -> np.ndarray:
    """0/1 values (NaN for an allowed empty cell) of a column of responses."""
    if positive is None and (pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_bool_dtype(raw.dtype)):
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
        if np.isin(values[~np.isnan(values)], (0.0, 1.0)).all() and (allow_empty or not np.isnan(values).any()):
            return values
    tokens = raw.map(_token)
    empty = tokens.isna().to_numpy()
    if empty.any() and not allow_empty:
        _fail(src, column, f"empty {column} value(s)", np.flatnonzero(empty), ids[empty],
              f"drop those rows to count the clients' outcome as unknown")
    out = np.full(len(raw), np.nan)
    if positive is not None:
        pos = _token(positive)
        present = tokens[~empty]
        others = sorted(set(present) - {pos})
        if len(others) > 1:
            bad = (~empty) & tokens.isin(others[1:]).to_numpy()
            _fail(src, column, f"value(s) other than {positive!r} and {others[0]!r} (with {column} positive="
                  f"{positive!r} exactly one other value counts as 0; found {others[:6]})",
                  np.flatnonzero(bad), ids[bad])
        hit = (tokens == pos).to_numpy()
        out[~empty] = hit[~empty].astype("float64")
        return out
    is_true = tokens.isin(_TRUE).to_numpy()
    is_false = tokens.isin(_FALSE).to_numpy()
    bad = ~empty & ~is_true & ~is_false
    if bad.any():
        seen = sorted(set(raw[bad].astype(str)))[:6]
        _fail(src, column, f"non-binary {column} value(s) {seen}", np.flatnonzero(bad), ids[bad],
              f"use 0/1, true/false or yes/no, or name the value that counts as 1 with evaluate.positive=<value>"
              if column == "response" else "use 0/1, true/false or yes/no")
    out[is_true] = 1.0
    out[is_false] = 0.0
    return out


def parse_responses(raw: pd.DataFrame, campaign_ids: np.ndarray | None = None, positive: Any = None,
                    path: str | Path | None = None) -> pd.DataFrame:
    """Check a responses table and bring it to ``client_id`` (int64), ``response`` (int64),
    ``revenue`` (float64, NaN when the file has no revenue) and ``delivered`` (float64: 1, 0,
    NaN = not known). ``campaign_ids``: the frozen campaign's clients (unknown ids are an
    error). ``path``: the file, for messages. One :class:`DataValidationError` per problem,
    naming the rows and client ids (see the module docstring).
    """
    src = _Source(Path(path) if path is not None else None)
    lacking = [c for c in ("client_id", "response") if c not in raw.columns]
    if lacking:
        raise DataValidationError(
            "responses", lacking[0], f"missing column(s) {lacking}; the file has {list(raw.columns)[:12]} "
            "(needed: client_id, response; optional: revenue, delivered)")
    if len(raw) == 0:
        raise DataValidationError("responses", None, "the table has no rows")
    id_text = raw["client_id"]
    ids_num = pd.to_numeric(id_text, errors="coerce").to_numpy(dtype="float64")
    bad = ~np.isfinite(ids_num) | (np.mod(np.nan_to_num(ids_num), 1) != 0)
    if bad.any():
        _fail(src, "client_id", "row(s) without an integer client id", np.flatnonzero(bad), id_text.to_numpy()[bad])
    ids = ids_num.astype("int64")
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        _fail(src, "client_id", "row(s) repeat a client id (one row per client)", np.flatnonzero(dup), ids[dup])
    if campaign_ids is not None:
        unknown = ~np.isin(ids, np.asarray(campaign_ids, dtype="int64"))
        if unknown.any():
            _fail(src, "client_id", "row(s) for client ids that are not in the campaign", np.flatnonzero(unknown),
                  ids[unknown], "is this the responses file of this campaign?")
    response = _binary(raw["response"], src, ids, "response", positive)
    if "revenue" in raw.columns:
        revenue = pd.to_numeric(raw["revenue"], errors="coerce").to_numpy(dtype="float64")
        unreadable = np.isnan(revenue) & raw["revenue"].notna().to_numpy()
        if unreadable.any():
            _fail(src, "revenue", "revenue value(s) that are not numbers", np.flatnonzero(unreadable), ids[unreadable])
        empty_resp = np.isnan(revenue) & (response == 1)
        if empty_resp.any():
            _fail(src, "revenue", "responder(s) with an empty revenue", np.flatnonzero(empty_resp), ids[empty_resp],
                  "fill in the revenue (0 when there was none)")
        revenue = np.where(np.isnan(revenue), 0.0, revenue)
        neg = (revenue < 0) | ~np.isfinite(revenue)
        if neg.any():
            _fail(src, "revenue", "negative or infinite revenue value(s)", np.flatnonzero(neg), ids[neg])
    else:
        revenue = np.full(len(raw), np.nan)
    delivered = (_binary(raw["delivered"], src, ids, "delivered", allow_empty=True) if "delivered" in raw.columns
                 else np.full(len(raw), np.nan))
    return pd.DataFrame({"client_id": ids, "response": response.astype("int64"), "revenue": revenue,
                         "delivered": delivered})


def read_responses(path: str | Path, campaign_ids: np.ndarray | None = None, positive: Any = None) -> pd.DataFrame:
    """:func:`read_responses_file` then :func:`parse_responses`."""
    return parse_responses(read_responses_file(path), campaign_ids, positive, path)


def join_responses(campaign: pd.DataFrame, responses: pd.DataFrame, missing_responses: str = "observed",
                   positive: Any = None, path: str | Path | None = None) -> pd.DataFrame:
    """Every client of the campaign (intention to treat: as assigned) with its outcome.

    ``responses`` (as read) is checked by :func:`parse_responses`. Adds
    ``has_outcome`` (the client has a row), ``response`` (float64, NaN when unknown),
    ``revenue`` (NaN when unknown or not in the file) and ``delivered`` (1 / 0 / NaN). Under
    ``missing_responses="non_responder"`` a missing row counts as response 0 and revenue 0
    (``has_outcome`` stays False, so the report can say how many were filled in); under
    ``"error"`` any missing row is a :class:`DataValidationError`.
    """
    if missing_responses not in MISSING_POLICIES:
        raise ConfigError(f"config 'evaluate', key 'missing_responses': must be one of {list(MISSING_POLICIES)}, "
                          f"got {missing_responses!r}")
    parsed = parse_responses(responses, campaign["client_id"].to_numpy(), positive, path)
    joined = campaign.merge(parsed, on="client_id", how="left", validate="1:1")
    joined.insert(len(campaign.columns), "has_outcome", joined["response"].notna().to_numpy())
    absent = ~joined["has_outcome"].to_numpy()
    if absent.any() and missing_responses == "error":
        ids = joined.loc[absent, "client_id"].head(_SHOW).tolist()
        raise DataValidationError(
            "responses", "client_id",
            f"{int(absent.sum())} of {len(joined)} campaign client(s) have no response row (e.g. client ids {ids}); "
            "supply them, or set evaluate.missing_responses=observed to analyse the clients with an outcome "
            "(default) or evaluate.missing_responses=non_responder to count them as non-responders")
    joined["response"] = joined["response"].astype("float64")
    if absent.any() and missing_responses == "non_responder":
        joined.loc[absent, "response"] = 0.0
        if joined["revenue"].notna().any():
            joined.loc[absent, "revenue"] = 0.0
    return joined



