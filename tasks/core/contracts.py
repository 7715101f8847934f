"""Data contracts of the raw tables and one validator that every loader uses.

A contract lists each column's kind (``int``, ``float``, ``bool``, ``string``,
``datetime``), whether it may hold nulls, allowed values, a lower bound, and which columns
form a unique key or carry event time. :func:`validate_table` checks a frame against a
contract and raises one :class:`~tasks.core.errors.DataValidationError` naming the table, the
column and a few offending rows. :func:`load_table` reads Parquet or CSV, coerces the
obvious (ISO date strings, 0/1 booleans) and validates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from tasks.core.errors import DataValidationError, NotFoundError

KINDS = ("int", "float", "bool", "string", "datetime")


@dataclass(frozen=True)
class Column:
    """One column of a contract."""

    name: str
    kind: str
    description: str
    nullable: bool = False
    allowed: tuple = ()
    min_value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: unknown kind {self.kind!r}; use one of {KINDS}")


@dataclass(frozen=True)
class TableContract:
    """The contract of one table."""

    name: str
    description: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...] = ()
    event_time: str | None = None
    extra_columns_allowed: bool = True
    # True: event times must be strictly before the as-of date (events known on the as-of
    # date are not yet known); False: on the as-of date is fine (registrations, past campaigns).
    events_strictly_before: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


CHANNELS = ("email", "mobile_push", "sms")
EVENTS = ("send", "open", "click", "purchase", "unsubscribe", "bounce")
UPLIFT_TYPES = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")
CATEGORIES = ("grocery", "household", "beauty", "electronics", "clothing", "kids")
PURCHASE_CHANNELS = ("online", "offline")

CLIENTS = TableContract(
    name="clients",
    description="Every client of the retailer, one row each, as of the data's as-of date.",
    columns=(
        Column("client_id", "int", "Client identifier, unique.", min_value=0),
        Column("registration_date", "datetime", "Day the client registered."),
        Column("age", "int", "Age in whole years on the as-of date.", min_value=0),
        Column("gender", "string", "F or M.", allowed=("F", "M")),
        Column("region", "string", "Region of the client's home store."),
        Column("email_opt_out", "bool", "The client refused e-mail."),
        Column("sms_opt_out", "bool", "The client refused SMS."),
        Column("push_opt_out", "bool", "The client refused mobile push."),
        Column("marketing_opt_out", "bool", "The client refused all marketing offers."),
    ),
    unique=("client_id",),
    event_time="registration_date",
)

PURCHASES = TableContract(
    name="purchases",
    description="One row per purchase transaction (a basket).",
    columns=(
        Column("client_id", "int", "Client who bought."),
        Column("timestamp", "datetime", "Time of the purchase."),
        Column("transaction_id", "int", "Transaction identifier, unique."),
        Column("amount", "float", "Paid amount, currency units, after discounts.", min_value=0),
        Column("quantity", "int", "Number of items in the basket.", min_value=1),
        Column("category", "string", "Main category of the basket.", allowed=CATEGORIES),
        Column("channel", "string", "online or offline.", allowed=PURCHASE_CHANNELS),
        Column("promo", "bool", "The basket used a discount or promo offer."),
    ),
    unique=("transaction_id",),
    event_time="timestamp",
    events_strictly_before=True,
)

MESSAGES = TableContract(
    name="messages",
    description="One row per message event (send, open, click, purchase, unsubscribe, bounce).",
    columns=(
        Column("client_id", "int", "Client the message went to."),
        Column("timestamp", "datetime", "Time of the event."),
        Column("channel", "string", "email, mobile_push or sms.", allowed=CHANNELS),
        Column("event", "string", "send, open, click, purchase, unsubscribe or bounce.", allowed=EVENTS),
        Column("campaign_id", "string", "Marketing mailing the event belongs to."),
    ),
    event_time="timestamp",
    events_strictly_before=True,
)

CAMPAIGN_HISTORY = TableContract(
    name="campaign_history",
    description="Past randomised campaigns: who was treated and who responded.",
    columns=(
        Column("client_id", "int", "Client in the campaign."),
        Column("campaign_id", "string", "Past campaign identifier."),
        Column("campaign_date", "datetime", "Day the offer went out; factors are computed as of it."),
        Column("treatment", "int", "1 = got the offer, 0 = random control.", allowed=(0, 1)),
        Column("response", "int", "1 = responded within the response window.", allowed=(0, 1)),
        Column("revenue", "float", "Revenue in the response window.", min_value=0),
    ),
    unique=("campaign_id", "client_id"),
    event_time="campaign_date",
)

TRUTH = TableContract(
    name="truth",
    description=(
        "Synthetic worlds only: each client's true response probability without and with "
        "the offer. Read only to simulate responses and for oracle measures."
    ),
    columns=(
        Column("client_id", "int", "Client identifier, unique."),
        Column("p_control", "float", "True response probability without the offer.", min_value=0),
        Column("p_treated", "float", "True response probability with the offer.", min_value=0),
        Column("uplift_type", "string", "persuadable, sure_thing, lost_cause or sleeping_dog.", allowed=UPLIFT_TYPES),
    ),
    unique=("client_id",),
)

RESPONSES = TableContract(
    name="responses",
    description="Outcomes of a frozen campaign after its response window.",
    columns=(
        Column("client_id", "int", "Client of the campaign."),
        Column("response", "int", "1 = responded.", allowed=(0, 1)),
        Column("revenue", "float", "Revenue in the response window.", min_value=0),
    ),
    unique=("client_id",),
)

CONTRACTS: dict[str, TableContract] = {
    c.name: c for c in (CLIENTS, PURCHASES, MESSAGES, CAMPAIGN_HISTORY, TRUTH, RESPONSES)
}


def _examples(df: pd.DataFrame, mask: np.ndarray, columns: Iterable[str] | None = None) -> tuple[list, str]:
    idx = np.flatnonzero(mask)[:5]
    sub = df.iloc[idx]
    if columns is not None:
        sub = sub[[c for c in columns if c in sub.columns]]
    return [int(i) for i in idx], sub.to_string(max_cols=12)


def _kind_ok(series: pd.Series, kind: str) -> bool:
    dt = series.dtype
    if kind == "int":
        return pdt.is_integer_dtype(dt) and not pdt.is_bool_dtype(dt)
    if kind == "float":
        return (pdt.is_float_dtype(dt) or pdt.is_integer_dtype(dt)) and not pdt.is_bool_dtype(dt)
    if kind == "bool":
        return pdt.is_bool_dtype(dt)
    if kind == "string":
        if pdt.is_string_dtype(dt) or isinstance(dt, pd.CategoricalDtype):
            return True
        if dt == object:
            non_null = series.dropna()
            return bool(non_null.map(lambda v: isinstance(v, str)).all())
        return False
    if kind == "datetime":
        return pdt.is_datetime64_any_dtype(dt)
    raise ValueError(kind)


def validate_table(
    df: pd.DataFrame,
    contract: TableContract,
    as_of: pd.Timestamp | str | None = None,
    allow_empty: bool = False,
) -> None:
    """Check ``df`` against ``contract``; raise :class:`DataValidationError` on the first breach.

    Checks, in order: the table is not empty, every contract column is present, each has
    the declared kind, no nulls where not allowed, values inside ``allowed`` and above
    ``min_value``, no duplicate unique keys, and (when ``as_of`` is given) no event time
    after ``as_of``. The frame is not modified.
    """
    t = contract.name
    if len(df) == 0 and not allow_empty:
        raise DataValidationError(t, None, "the table is empty")
    missing = [c for c in contract.column_names if c not in df.columns]
    if missing:
        raise DataValidationError(
            t, missing[0], f"missing column(s) {missing}; the table has {list(df.columns)[:20]}"
        )
    for col in contract.columns:
        s = df[col.name]
        if not _kind_ok(s, col.kind):
            problem, bad = _kind_problem(s, col)
            rows, ex = _examples(df, bad, [col.name])
            raise DataValidationError(t, col.name, problem, rows, ex)
        nulls = s.isna().to_numpy()
        if nulls.any() and not col.nullable:
            rows, ex = _examples(df, nulls)
            raise DataValidationError(t, col.name, f"{int(nulls.sum())} missing value(s)", rows, ex)
        if col.allowed:
            bad = ~s.isin(list(col.allowed)).to_numpy() & ~nulls
            if bad.any():
                rows, ex = _examples(df, bad)
                raise DataValidationError(
                    t, col.name,
                    f"{int(bad.sum())} value(s) outside {list(col.allowed)}",
                    rows, ex,
                )
        if col.min_value is not None:
            bad = (s.to_numpy() < col.min_value) & ~nulls
            if bad.any():
                rows, ex = _examples(df, bad)
                raise DataValidationError(
                    t, col.name, f"{int(bad.sum())} value(s) below {col.min_value}", rows, ex
                )
    if contract.unique:
        dup = df.duplicated(subset=list(contract.unique), keep=False).to_numpy()
        if dup.any():
            rows, ex = _examples(df, dup, contract.unique)
            key = contract.unique[0] if len(contract.unique) == 1 else "+".join(contract.unique)
            raise DataValidationError(
                t, key, f"{int(dup.sum())} row(s) share a duplicate key {list(contract.unique)}", rows, ex
            )
    if as_of is not None and contract.event_time is not None:
        limit = pd.Timestamp(as_of)
        s = _naive(df[contract.event_time])
        bad = (s >= limit).to_numpy() if contract.events_strictly_before else (s > limit).to_numpy()
        if bad.any():
            rows, ex = _examples(df, bad)
            raise DataValidationError(
                t, contract.event_time,
                f"{int(bad.sum())} row(s) {as_of_word(contract)} the as-of date {limit.date()}",
                rows, ex,
            )


def as_of_word(contract: TableContract) -> str:
    """How the table's event times may not relate to the as-of date: "at or after" or "after"."""
    return "at or after" if contract.events_strictly_before else "after"


def _naive(s: pd.Series) -> pd.Series:
    """Time-zone-aware times in UTC without the zone (as-of dates are naive UTC)."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s


def _kind_problem(s: pd.Series, col: Column) -> tuple[str, np.ndarray]:
    """What is wrong with a column of the wrong kind, and the rows that show it.

    A number column names the values that are not numbers; an integer column read as float
    names its missing values (NaN) or its fractions; otherwise every row shows the dtype.
    """
    everything = np.ones(len(s), dtype=bool)
    if col.kind not in ("int", "float") or pdt.is_bool_dtype(s.dtype):
        return f"expected {col.kind} values, found dtype {s.dtype}", everything
    num = pd.to_numeric(s, errors="coerce")
    not_numbers = (num.isna() & s.notna()).to_numpy()
    if not_numbers.any():
        return (f"expected {col.kind} values, found {int(not_numbers.sum())} value(s) that are not numbers",
                not_numbers)
    missing = s.isna().to_numpy()
    if missing.any() and not col.nullable:
        return (f"{int(missing.sum())} missing value(s) (NaN) in an integer column", missing)
    fraction = (np.mod(num.to_numpy(dtype="float64"), 1) != 0) & ~missing
    if fraction.any():
        return f"expected int values, found {int(fraction.sum())} value(s) with a fraction", fraction
    return f"expected {col.kind} values, found dtype {s.dtype}", everything


def coerce_to_contract(df: pd.DataFrame, contract: TableContract) -> pd.DataFrame:
    """Return a copy with obvious conversions applied (date strings, 0/1 booleans, yes/no).

    Values that cannot be converted are left as they are, so that :func:`validate_table`
    reports them.
    """
    out = df.copy()
    for col in contract.columns:
        if col.name not in out.columns:
            continue
        s = out[col.name]
        if col.kind == "datetime" and not pdt.is_datetime64_any_dtype(s.dtype):
            conv = pd.to_datetime(s, errors="coerce")
            if conv.notna().sum() == s.notna().sum():
                out[col.name] = conv
        elif col.kind == "bool" and not pdt.is_bool_dtype(s.dtype):
            mapping = {0: False, 1: True, "0": False, "1": True, "true": True, "false": False,
                       "True": True, "False": False, "yes": True, "no": False}
            if s.notna().all() and s.isin(list(mapping)).all():
                out[col.name] = s.map(mapping).astype(bool)
        elif col.kind == "int" and pdt.is_float_dtype(s.dtype):
            whole = bool(np.all(np.mod(s.dropna().to_numpy(), 1) == 0))
            if whole and s.notna().all():
                out[col.name] = s.astype("int64")
            elif whole and col.nullable:
                out[col.name] = s.astype("Int64")
    return out


TABLE_SUFFIXES = (".parquet", ".csv", ".tsv")


def find_table_file(data_dir: str | Path, table: str) -> Path | None:
    """The file holding ``table`` in a dataset folder, or None when there is none.

    ``<table>.parquet`` (a file, or a folder of Parquet part files) comes first; without it
    ``<table>.csv`` or ``<table>.tsv`` (read by :func:`load_table`, separator detected).
    """
    folder = Path(data_dir)
    for suffix in TABLE_SUFFIXES:
        path = folder / f"{table}{suffix}"
        if path.is_file() or (suffix == ".parquet" and path.is_dir() and any(path.rglob("*.parquet"))):
            return path
    return None


def require_table_file(data_dir: str | Path, table: str) -> Path:
    """:func:`find_table_file`, with :class:`NotFoundError` naming the files looked for."""
    found = find_table_file(data_dir, table)
    if found is None:
        raise NotFoundError(f"table '{table}': file {Path(data_dir) / (table + '.parquet')} does not exist "
                            f"(nor {table}.csv or {table}.tsv)")
    return found


def _read_file(path: Path, table: str, columns: list[str] | None, header_only: bool = False) -> pd.DataFrame:
    """The rows (or with ``header_only`` none: the columns only) of a table file as
    :func:`load_table` reads it: Parquet (a file, or a folder of part files whose folder names,
    e.g. client-id buckets ``bucket=<k>/``, are not columns) or CSV / TSV (separator detected)."""
    if path.suffix == ".parquet" or path.is_dir():
        if header_only:
            import pyarrow.dataset as pads

            schema = pads.dataset(path, format="parquet", partitioning=None).schema
            index = [c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)]
            return pd.DataFrame(columns=[c for c in schema.names if c not in index])
        return pd.read_parquet(path, columns=columns, partitioning=None) if path.is_dir() else \
            pd.read_parquet(path, columns=columns)
    if path.suffix in (".csv", ".tsv", ".txt"):
        sep = "\t" if path.suffix == ".tsv" else None
        return pd.read_csv(path, sep=sep, engine="python" if sep is None else "c", usecols=columns,
                           nrows=0 if header_only else None)
    raise DataValidationError(table, None, f"unsupported file type {path.suffix!r} ({path})")


def table_file_columns(path: str | Path, table: str) -> list[str]:
    """The columns of a table file (``table`` names it in errors), as :func:`load_table` would
    return them, from the Parquet schema or the CSV header: no row is read."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"table '{table}': file {path} does not exist")
    return [str(c) for c in _read_file(path, table, None, header_only=True).columns]


def load_table(
    path: str | Path,
    contract: TableContract,
    as_of: pd.Timestamp | str | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Read a Parquet or CSV table, coerce it to ``contract`` and validate it.

    Raises :class:`NotFoundError` when the file is missing and
    :class:`DataValidationError` when the table breaks its contract.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"table '{contract.name}': file {path} does not exist")
    df = coerce_to_contract(_read_file(path, contract.name, columns), contract)
    sub = contract if columns is None else TableContract(
        contract.name, contract.description,
        tuple(c for c in contract.columns if c.name in columns),
        unique=tuple(u for u in contract.unique if u in columns) if all(u in columns for u in contract.unique) else (),
        event_time=contract.event_time if contract.event_time in columns else None,
        events_strictly_before=contract.events_strictly_before,
    )
    validate_table(df, sub, as_of=as_of)
    return df


def contract_markdown(contracts: Mapping[str, TableContract] = CONTRACTS) -> str:
    """Render the contracts as Markdown tables (used for docs/data_contracts.md)."""
    parts = []
    for c in contracts.values():
        parts.append(f"### {c.name}\n\n{c.description}")
        if c.unique:
            parts.append(f"Unique key: {', '.join(c.unique)}.")
        if c.event_time:
            parts.append(f"Event time: {c.event_time} (none {as_of_word(c)} the dataset's as-of date).")
        rows = ["| column | type | nulls | meaning |", "|---|---|---|---|"]
        for col in c.columns:
            meaning = col.description
            if col.allowed:
                meaning += f" Allowed: {', '.join(map(str, col.allowed))}."
            rows.append(f"| {col.name} | {col.kind} | {'yes' if col.nullable else 'no'} | {meaning} |")
        parts.append("\n".join(rows))
    return "\n\n".join(parts) + "\n"
