"""Reading a wide table as a user hands it over: a CSV file (any of the usual separators) or
Parquet (a file, or a folder of part files), and the content hash that pins it.

* :func:`read_wide_table` - the table as a DataFrame; one clear error for a missing path, an
  empty file or one that does not parse.
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
from pathlib import Path

import pandas as pd

from tasks.core.errors import DataValidationError, NotFoundError
from tasks.core.io import sha256_file, stable_hash

SEPARATORS = (",", ";", "\t", "|")
PARQUET_SUFFIXES = (".parquet", ".pq")
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
            raise DataValidationError(table, None, f"cannot read {path} as Parquet: "
                                      f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    used = sep or sniff_separator(path, table)
    try:
        df = pd.read_csv(path, sep=used, encoding_errors="strict")
    except pd.errors.EmptyDataError:
        raise DataValidationError(table, None, f"the file {path} is empty") from None
    except UnicodeDecodeError as exc:
        raise DataValidationError(table, None, f"cannot read {path.name}: not UTF-8 text ({exc.reason} at byte "
                                  f"{exc.start}); save it as UTF-8 CSV or Parquet") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataValidationError(table, None, f"cannot parse {path.name} with separator {_show(used)}: "
                                  f"{str(exc).strip().splitlines()[0]}; give the separator with data.sep=<sep>"
                                  ) from None
    if df.shape[1] == 1 and sep is None and len(df.columns) and any(s in str(df.columns[0]) for s in SEPARATORS):
        raise DataValidationError(table, None, f"{path.name} reads as one column {str(df.columns[0])[:60]!r}; "
                                  "give the separator with data.sep=<sep> (e.g. data.sep=';')")
    if used != ",":
        _read_decimal_commas(df)
    return df


def _read_decimal_commas(df: pd.DataFrame) -> None:
    """Columns of ``df`` (read from a non-comma CSV) whose every value is a number written with a
    decimal comma (``12,5``, ``1.234,56``; at least one with a comma) become floats, in place."""
    for col in df.columns:
        s = df[col]
        if not (s.dtype == object or pd.api.types.is_string_dtype(s.dtype)):
            continue
        text = s.dropna().astype(str).str.strip()
        if text.empty or not text.str.contains(",", regex=False).any():
            continue
        if not text.map(lambda v: _DECIMAL_COMMA.fullmatch(v) is not None).all():
            continue
        df[col] = pd.to_numeric(s.astype("string").str.strip().str.replace(r"[. ](?=\d{3}(?:[. ,]|$))", "", regex=True)
                                .str.replace(",", ".", regex=False), errors="raise").astype("float64")


def table_content_hash(path: str | Path) -> str:
    """sha256 of the table's content: the file's bytes, or for a folder its Parquet files'
    names and hashes (sorted), so any change to any part changes it."""
    path = Path(path)
    _require_path(path, "table")
    if path.is_dir():
        return stable_hash([[p.relative_to(path).as_posix(), sha256_file(p)] for p in parquet_parts(path)])
    return sha256_file(path)
