"""The part folder of a checkpoint: how a stage computed partition by partition is stored.

A parted stage's checkpoint (``stages/NN_<stage>.parquet``) is a folder: ``part-00000.parquet``,
``part-00001.parquet``, ... in partition order, and :data:`PART_RECORD`, its record. Each part
is written where its rows are (:func:`write_part`: on a Dask worker, or in the local process),
atomically and hashed as it is written, with its rows' hashes in a hidden file beside it;
:meth:`tasks.campaign.checkpoints.CheckpointStore.seal` makes the fingerprint from those and
writes the record. The format and its readers live here; the store decides when.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.io import atomic_write, fingerprint_parts, sha256_file, stable_hash

PART_RECORD = "_checkpoint.json"  # the record of a part folder (a leading _ : not a data file to readers)
RECORD_HASH = "record_sha256"


class HashingFile:
    """A file opened for writing that hashes the bytes as they are written (a Parquet writer
    only appends), so sealing a checkpoint needs no second read of it."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.size += view.nbytes
        return self._fh.write(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._fh.flush()

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def close(self) -> None:
        self._fh.close()


def write_hashed(table: pa.Table, path: Path, metadata: dict[str, str] | None = None) -> HashingFile:
    """Write ``table`` as one Parquet file at ``path`` (snappy; ``metadata`` in its footer),
    hashed as written; the closed sink gives the hash and size of the bytes."""
    sink = HashingFile(path)
    try:
        with pq.ParquetWriter(sink, table.schema, compression="snappy") as writer:
            writer.write_table(table)
            if metadata:
                writer.add_key_value_metadata(metadata)
    finally:
        sink.close()
    return sink


def part_file(index: int) -> str:
    """File name of part ``index`` (from 0) of a part folder: ``part-00000.parquet``."""
    return f"part-{index:05d}.parquet"


def row_hashes_file(part: str) -> str:
    return f".{part}.rows"  # hidden: no reader of the folder takes it for data


@dataclass(frozen=True)
class Part:
    """What writing one part of a part-folder checkpoint gives back: small facts, never rows
    (its rows' hashes wait in a hidden file beside it until the folder is sealed)."""

    index: int
    file: str
    rows: int
    sha256: str
    dtypes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class StagedParts:
    """A part folder being written and the parts written into it: what a parted stage's
    compute function returns, for :meth:`CheckpointStore.seal` to commit."""

    folder: Path
    parts: tuple[Part, ...]


def write_part(frame: pd.DataFrame, folder: str | Path, index: int) -> Part:
    """Write ``frame`` as part ``index`` of the part folder being written at ``folder``.

    The part is written atomically and hashed as it is written; its rows' hashes (8 bytes a
    row, what the checkpoint's fingerprint is made of) go to a hidden file beside it. Runs
    where the rows are: a Dask worker, or the local process.
    """
    folder = Path(folder)
    out = frame.reset_index(drop=True)
    dtypes, hashes = fingerprint_parts(out)
    name = part_file(index)
    atomic_write(folder / row_hashes_file(name), lambda tmp: np.ascontiguousarray(hashes, dtype=np.uint64).tofile(tmp))
    table = pa.Table.from_pandas(out, preserve_index=False)
    digest: dict[str, str] = {}

    def write(tmp: Path) -> None:
        digest["sha256"] = write_hashed(table, tmp).sha.hexdigest()

    atomic_write(folder / name, write)
    return Part(int(index), name, int(len(out)), digest["sha256"], tuple((c, t) for c, t in dtypes))


def record_hash(record: dict) -> str:
    return stable_hash({k: v for k, v in record.items() if k != RECORD_HASH})


def replace_folder(new: Path, target: Path) -> None:
    """Put the folder ``new`` at ``target``; what was there (a folder, or a single file of an
    older version) is moved aside under a hidden name first and deleted after."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def verify_parts(folder: Path, parts: list[dict]) -> str | None:
    """None when the part folder holds exactly the recorded parts with their recorded hashes."""
    listed = [str(p["file"]) for p in parts]
    extra = sorted({f.name for f in folder.glob("*.parquet")} - set(listed))
    if extra:
        return f"unexpected part {extra[0]} beside the recorded ones"
    for p in parts:
        actual = sha256_file(folder / str(p["file"]))
        if actual != p["sha256"]:
            return f"part {p['file']}: content hash {actual[:12]}... differs from the recorded {str(p['sha256'])[:12]}..."
    return None


class ColumnReader:
    """One column at a time from a checkpoint's Parquet file(s) in row order, each file opened
    (its footer parsed) once: for the split's balance check, which never holds the factor
    table whole."""

    def __init__(self, files: list[Path]) -> None:
        self._files = [pq.ParquetFile(f) for f in files]

    @property
    def names(self) -> list[str]:
        return list(self._files[0].schema_arrow.names) if self._files else []

    def column(self, name: str) -> np.ndarray:
        tables = [f.read(columns=[name]) for f in self._files]
        return pa.concat_tables(tables)[name].to_numpy()

    def close(self) -> None:
        for f in self._files:
            f.close()

    def __enter__(self) -> "ColumnReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
