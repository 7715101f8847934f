"""Reading a wide table as a user hands it over: a CSV file (any of the usual separators) or
Parquet (a file, or a folder of part files), and the content hash that pins it.

* :func:`read_wide_table` - the table as a DataFrame; one clear error for a missing path, an
  empty file or one that does not parse.
* :func:`scan_csv` and :func:`iter_csv` - a CSV file in chunks of rows, every chunk with the
  column types of the whole file (found in one pass over it first), so a file of millions of
  rows is read with one chunk in memory; :func:`read_wide_table` is their chunks joined.
* :func:`sniff_separator` - the separator of a CSV file (``,`` ``;`` tab ``|``), found from
  its first lines: the one that splits every line into the same number of fields (quotes
  respected), the most fields winning.
* :func:`table_content_hash` - sha256 of the file's bytes; for a folder of Parquet, of its
  part files (sorted by name, each with its own hash), so renaming or changing any part
  changes it.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from tasks.core.errors import DataValidationError, NotFoundError
from tasks.core.io import sha256_file, stable_hash

SEPARATORS = (",", ";", "\t", "|")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_CHUNK_ROWS = 200_000  # rows of a CSV parsed at a time
_SNIFF_LINES = 50
_SNIFF_BYTES = 1 << 20
# a number written with a decimal comma, with or without '.' or space thousands groups: 12,5  -0,25  1.234,56
_DECIMAL_COMMA = re.compile(r"[+-]?(?:\d{1,3}(?:[. ]\d{3})+|\d+),\d+|[+-]?\d+")


def _show(sep: str) -> str:
    return "tab" if sep == "\t" else repr(sep)


def is_parquet(path: Path) -> bool:
    """A Parquet file, or a folder (read as a Parquet dataset)."""
    return path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES


def parquet_parts(folder: Path) -> list[Path]:
    """The Parquet files of a folder (recursively, sorted by their path inside it)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES
                  and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts))


def _require_path(path: Path, table: str) -> None:
    if not path.exists():
        raise NotFoundError(f"table '{table}': {path} does not exist; give a CSV or Parquet file (or a folder of "
                            "Parquet files) with data.path=<path>")
    if path.is_dir() and not parquet_parts(path):
        raise NotFoundError(f"table '{table}': the folder {path} holds no .parquet file; give a CSV or Parquet "
                            "file, or a folder of Parquet files, with data.path=<path>")


def sniff_separator(path: str | Path, table: str = "table") -> str:
    """The separator of CSV file ``path``: of ``,`` ``;`` tab ``|``, the one that splits each
    of the first lines into the same number (> 1) of fields, the most fields winning;
    ``,`` for a one-column file."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    if len(head) == _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    lines = [line for line in lines[:_SNIFF_LINES] if line.strip()]
    if not lines:
        raise DataValidationError(table, None, f"the file {path} is empty")
    best, best_fields = ",", 1
    for sep in SEPARATORS:
        counts = {len(row) for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=sep)}
        if len(counts) == 1 and (n := counts.pop()) > best_fields:
            best, best_fields = sep, n
    if best_fields == 1:
        # no separator splits every line alike: take the one of the header, if it has one
        header = lines[0]
        found = max(SEPARATORS, key=header.count)
        best = found if header.count(found) > 0 else ","
    return best


def parquet_error(path: Path, exc: Exception, table: str = "table") -> DataValidationError:
    """The one error for a Parquet file that cannot be read: the file and the reader's first line."""
    return DataValidationError(table, None, f"cannot read {path} as Parquet: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


def read_wide_table(path: str | Path, sep: str | None = None, table: str = "table") -> pd.DataFrame:
    """The table at ``path``: CSV (``sep``, or detected by :func:`sniff_separator`), a Parquet
    file or a folder of Parquet files. Missing path: :class:`NotFoundError`; an empty file or
    one that does not parse: :class:`DataValidationError` naming the file."""
    path = Path(path)
    _require_path(path, table)
    if is_parquet(path):
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise parquet_error(path, exc, table) from None
    layout = scan_csv(path, sep, table)
    return pd.concat(list(iter_csv(path, layout, table)), ignore_index=True)


@dataclass(frozen=True)
class CsvLayout:
    """What a CSV file's columns are over all its rows (:func:`scan_csv`).

    ``dtypes``: each column's type as the file is read (decimal-comma columns as float64).
    ``as_text``: columns read as the text written (numbers in some chunks, text in others).
    ``decimal_comma``: text columns whose every value is a number written with a decimal comma,
    read as floats. ``parsed``: each column's type before the decimal commas are read.
    """

    sep: str
    columns: list[Any]
    dtypes: dict[Any, Any]
    parsed: dict[Any, Any] = field(repr=False)
    as_text: tuple[Any, ...] = ()
    decimal_comma: tuple[Any, ...] = ()
    rows: int = 0


def _csv_chunks(path: Path, sep: str, table: str, rows: int, usecols: Sequence[Any] | None = None,
                dtype: dict | None = None) -> Iterator[pd.DataFrame]:
    """The file's chunks as pandas parses them; a reading error is one :class:`DataValidationError`."""
    try:
        with pd.read_csv(path, sep=sep, encoding_errors="strict", chunksize=rows,
                         usecols=list(usecols) if usecols is not None else None, dtype=dtype) as reader:
            yield from reader
    except pd.errors.EmptyDataError:
        raise DataValidationError(table, None, f"the file {path} is empty") from None
    except UnicodeDecodeError as exc:
        raise DataValidationError(table, None, f"cannot read {path.name}: not UTF-8 text ({exc.reason} at byte "
                                  f"{exc.start}); save it as UTF-8 CSV or Parquet") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataValidationError(table, None, f"cannot parse {path.name} with separator {_show(sep)}: "
                                  f"{str(exc).strip().splitlines()[0]}; give the separator with data.sep=<sep>"
                                  ) from None


def _column_type(kinds: set, any_null: bool) -> Any:
    """A column's type over the file from the types pandas gave its chunks that hold a value
    (``kinds``) and whether any value is missing; None: read it as the text written."""
    names = {str(k) for k in kinds}
    if not kinds:
        return np.dtype("float64")                     # nothing but missing values
    if "str" in names:
        return next(iter(kinds)) if len(kinds) == 1 else None
    if names <= {"int64", "float64"}:
        return np.dtype("float64") if "float64" in names or any_null else np.dtype("int64")
    if names <= {"bool", "object"}:                    # yes/no flags; with a missing value, objects
        return np.dtype("object") if "object" in names or any_null else np.dtype("bool")
    if len(kinds) == 1:
        only = next(iter(kinds))
        return np.dtype("float64") if any_null and pd.api.types.is_integer_dtype(only) else only
    return None


def _decimal_comma_verdict(s: pd.Series) -> tuple[bool, bool]:
    """(every value is a number, written with a decimal comma or whole; some value has a comma)."""
    text = s.dropna().astype(str).str.strip()
    return bool(text.str.fullmatch(_DECIMAL_COMMA.pattern).all()), bool(text.str.contains(",", regex=False).any())


def scan_csv(path: str | Path, sep: str | None = None, table: str = "table", rows: int = CSV_CHUNK_ROWS) -> CsvLayout:
    """One pass over CSV file ``path`` in chunks of ``rows``: its separator (``sep`` or
    detected), columns, rows and every column's type over all rows, as pandas reads a whole
    file: integers with a missing value are floats, true/false flags with one are objects, a
    column of only missing values is floats; a column with numbers in some chunks and text in
    others is the text written; with a separator other than ``,``, a text column of numbers
    written with a decimal comma (``12,5``, ``1.234,56``; at least one with a comma) is floats."""
    path = Path(path)
    _require_path(path, table)
    used = sep or sniff_separator(path, table)
    kinds: dict[Any, set] = {}
    nulls: dict[Any, bool] = {}
    verdict: dict[Any, list[bool]] = {}
    columns: list[Any] | None = None
    n = 0
    for chunk in _csv_chunks(path, used, table, rows):
        if columns is None:
            columns = list(chunk.columns)
            if len(columns) == 1 and sep is None and any(s_ in str(columns[0]) for s_ in SEPARATORS):
                raise DataValidationError(table, None, f"{path.name} reads as one column {str(columns[0])[:60]!r}; "
                                          "give the separator with data.sep=<sep> (e.g. data.sep=';')")
            kinds = {c: set() for c in columns}
            nulls = {c: False for c in columns}
            verdict = {c: [True, False] for c in columns}
        n += len(chunk)
        for c in columns:
            col = chunk[c]
            missing = col.isna()
            nulls[c] = nulls[c] or bool(missing.any())
            if not missing.all():
                kinds[c].add(col.dtype)
            if used != "," and pd.api.types.is_string_dtype(col.dtype) and verdict[c][0]:
                ok, comma = _decimal_comma_verdict(col)
                verdict[c] = [ok, verdict[c][1] or comma]
    if columns is None:
        raise DataValidationError(table, None, f"the file {path} is empty")
    parsed = {c: _column_type(set(kinds[c]), nulls[c]) for c in columns}
    as_text = [c for c in columns if parsed[c] is None]
    for c in as_text:
        parsed[c] = pd.StringDtype(na_value=np.nan)
        verdict[c] = [True, False]
    if as_text and used != ",":  # a mixed column's decimal commas are judged on its text as written
        for chunk in _csv_chunks(path, used, table, rows, usecols=as_text, dtype={c: "str" for c in as_text}):
            for c in as_text:
                if verdict[c][0]:
                    ok, comma = _decimal_comma_verdict(chunk[c])
                    verdict[c] = [ok, verdict[c][1] or comma]
    decimal = [c for c in columns if used != "," and pd.api.types.is_string_dtype(parsed[c])
               and verdict[c][0] and verdict[c][1]]
    dtypes = {c: (np.dtype("float64") if c in decimal else parsed[c]) for c in columns}
    return CsvLayout(sep=used, columns=columns, dtypes=dtypes, parsed=parsed, as_text=tuple(as_text),
                     decimal_comma=tuple(decimal), rows=n)


def iter_csv(path: str | Path, layout: CsvLayout, table: str = "table", columns: Sequence[Any] | None = None,
             rows: int = CSV_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """CSV file ``path`` in chunks of ``rows`` rows (``columns`` only, in the file's order),
    every chunk with the types of :func:`scan_csv`'s ``layout``: joined, the chunks are the
    whole file as :func:`read_wide_table` reads it. A file without rows gives one empty chunk."""
    path = Path(path)
    wanted = list(layout.columns) if columns is None else [c for c in layout.columns if c in set(columns)]
    text = {c: "str" for c in layout.as_text if c in wanted}
    empty = True
    for chunk in _csv_chunks(path, layout.sep, table, rows, usecols=None if columns is None else wanted,
                             dtype=text or None):
        empty = False
        yield _as_layout(chunk[wanted], layout)
    if empty:
        yield pd.DataFrame({c: pd.Series([], dtype=layout.dtypes[c]) for c in wanted})


def _as_layout(chunk: pd.DataFrame, layout: CsvLayout) -> pd.DataFrame:
    """A chunk with the whole file's column types (and its decimal-comma columns as floats)."""
    out = {}
    for c in chunk.columns:
        s = chunk[c]
        if s.dtype != layout.parsed[c]:
            s = s.astype(layout.parsed[c])
        if c in layout.decimal_comma:
            s = pd.to_numeric(s.astype("string").str.strip().str.replace(r"[. ](?=\d{3}(?:[. ,]|$))", "", regex=True)
                              .str.replace(",", ".", regex=False), errors="raise").astype("float64")
        out[c] = s
    return pd.DataFrame(out, index=chunk.index)


def table_content_hash(path: str | Path) -> str:
    """sha256 of the table's content: the file's bytes, or for a folder its Parquet files'
    names and hashes (sorted), so any change to any part changes it."""
    path = Path(path)
    _require_path(path, "table")
    if path.is_dir():
        return stable_hash([[p.relative_to(path).as_posix(), sha256_file(p)] for p in parquet_parts(path)])
    return sha256_file(path)
