"""Atomic file writes, hashing and small JSON helpers.

Every file the product writes goes through these functions: the data is written to a
temporary file in the same folder, flushed to disk and renamed over the target, so a reader
sees either the old file or the complete new one, never a half-written file.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import pandas as pd


def _atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp creates the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place:
    readers see the old file or the complete new one, never a partial write."""
    return _atomic_write(Path(path), write)


def atomic_write_parquet(df: pd.DataFrame, path: str | Path, **kwargs: Any) -> Path:
    """Write ``df`` to Parquet at ``path`` atomically (index dropped unless it is named)."""
    kwargs.setdefault("index", False)
    return _atomic_write(Path(path), lambda tmp: df.to_parquet(tmp, **kwargs))


class ParquetChunkWriter:
    """Write a table handed over in chunks as one Parquet file, atomically.

    ``with ParquetChunkWriter(path, row_group_size) as w: w.write(df)`` (any number of
    DataFrame chunks with the same columns and dtypes, in row order). Rows are written in row
    groups of exactly ``row_group_size`` rows (the last one shorter) however the chunks are
    cut, so the file holds the same row groups as ``df.to_parquet(path, index=False,
    row_group_size=...)`` of the whole table while only about one row group is buffered. The
    file is written beside ``path`` and renamed into place on a clean exit; an error leaves
    ``path`` untouched. ``rows`` counts the rows written.
    """

    def __init__(self, path: str | Path, row_group_size: int) -> None:
        self.path = Path(path)
        self.row_group_size = int(row_group_size)
        self.rows = 0
        self._buffer: list[Any] = []
        self._buffered = 0
        self._writer: Any = None
        self._schema: Any = None
        self._tmp: Path | None = None

    def __enter__(self) -> "ParquetChunkWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp_name)
        return self

    def write(self, df: pd.DataFrame) -> None:
        """Append the rows of ``df``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(df, preserve_index=False)
        if self._writer is None:
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self._tmp, self._schema)
        elif not table.schema.equals(self._schema):
            raise ValueError(f"{self.path.name}: chunk schema {table.schema} differs from {self._schema}")
        if table.num_rows:
            self._buffer.append(table)
            self._buffered += table.num_rows
        if self._buffered >= self.row_group_size:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        import pyarrow as pa

        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer)
        size, done = self.row_group_size, 0
        while table.num_rows - done >= size or (final and done < table.num_rows):
            group = table.slice(done, size).combine_chunks()
            self._writer.write_table(group, row_group_size=size)
            done += group.num_rows
        self.rows += done
        rest = table.slice(done)
        self._buffer = [rest] if rest.num_rows else []
        self._buffered = rest.num_rows

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._tmp is not None
        try:
            if exc_type is None:
                if self._writer is None:
                    raise ValueError(f"{self.path.name}: no chunk written (not even an empty one)")
                self._flush(final=True)
            if self._writer is not None:
                self._writer.close()
            if exc_type is None:
                tmp = self._tmp
                _atomic_write(self.path, lambda target: os.replace(tmp, target))
        finally:
            self._tmp.unlink(missing_ok=True)


def atomic_write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return _atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return _atomic_write(Path(path), lambda tmp: tmp.write_bytes(data))


_JSON_SCALAR = r'(?:"(?:[^"\\\n]|\\.)*"|-?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|Infinity)|NaN|true|false|null)'
_FLAT_LIST = re.compile(r"\[\n\s+(" + _JSON_SCALAR + r"(?:,\n\s+" + _JSON_SCALAR + r")*)\n\s*\]")


def json_text(obj: Any) -> str:
    """Indented, key-sorted JSON with every list of plain values on one line.

    Objects stay one key per line for reading and diffing; a list of numbers or strings
    (a drift reference sample holds 5,000 per feature) would otherwise take a line per value.
    """
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    return _FLAT_LIST.sub(lambda m: "[" + re.sub(r",\n\s+", ", ", m.group(1)) + "]", text)


def atomic_write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as :func:`json_text` to ``path`` atomically."""
    return atomic_write_text(json_text(obj) + "\n", path)


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_folder(path: str | Path) -> str:
    """Hex sha256 of a folder of files: each file's relative path and byte hash, in path order
    (a table stored as part files, e.g. bucketed by client)."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(root).as_posix()}\0{sha256_file(f)}\n".encode("utf-8"))
    return h.hexdigest()


def sha256_text(text: str) -> str:
    """Hex sha256 of a UTF-8 string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stable_hash(obj: Any) -> str:
    """Hex sha256 of a JSON-serialisable object, independent of dict key order."""
    return sha256_text(json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")))


def fingerprint_parts(df: pd.DataFrame) -> tuple[list[tuple[str, str]], Any]:
    """What :func:`frame_fingerprint` hashes of ``df``: its ``(column, dtype)`` pairs and its
    rows' uint64 hashes (a numpy array, in row order; the index left out)."""
    dtypes = [(str(c), str(t)) for c, t in df.dtypes.items()]
    return dtypes, pd.util.hash_pandas_object(df, index=False).to_numpy()


def frame_fingerprint(df: pd.DataFrame) -> str:
    """Hex sha256 of a frame's column names, dtypes and values (row order matters)."""
    fp = ChunkedFingerprint()
    fp.update(df)
    return fp.hexdigest()


class ChunkedFingerprint:
    """:func:`tasks.core.io.frame_fingerprint` of a frame handed over in row chunks: the same
    digest as of the concatenated frame (the dtypes, then every row's hash in order).

    A chunk can also be given as its :func:`fingerprint_parts` (column dtypes and row hashes,
    8 bytes a row), so the rows can be hashed where they are (a worker) and the digest made
    elsewhere without them."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._dtypes: list | None = None
        self.rows = 0

    def update(self, chunk: pd.DataFrame) -> None:
        self.update_hashes(*fingerprint_parts(chunk))

    def update_hashes(self, dtypes: list, row_hashes: Any) -> None:
        """Add a chunk given as its column dtypes and its rows' uint64 hashes (in order)."""
        dtypes = [(str(c), str(t)) for c, t in dtypes]
        if self._dtypes is None:
            self._dtypes = dtypes
            self._h.update(json.dumps(dtypes).encode())
        elif dtypes != self._dtypes:
            raise ValueError(f"chunk columns {dtypes} differ from the first chunk's {self._dtypes}")
        self._h.update(row_hashes.tobytes())
        self.rows += len(row_hashes)

    def hexdigest(self) -> str:
        return self._h.hexdigest()
