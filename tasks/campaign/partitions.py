"""Partitioned Parquet for the factor and score stages when they run on a Dask cluster.

The campaign's factor and score stages map a per-partition function over partitions of
clients (:data:`tasks.campaign.stages.Mapper`). On a cluster, big inputs and outputs do not travel
through the orchestrator: before a partition is submitted, every DataFrame or array
argument is written as its own Parquet file under a partition folder of the campaign
(:func:`spill_args`); the worker reads its own partition, runs the function and writes its
result as that partition's part of the stage's part folder
(:func:`tasks.campaign.checkpoint_parts.write_part`, atomically, hashed as written), returning
only small facts (:class:`~tasks.campaign.checkpoint_parts.Part`: file, rows, sha256, dtypes).
The driver never reads a result back: it seals the folder from those facts and the parts'
row hashes (:meth:`tasks.campaign.checkpoints.CheckpointStore.seal`). The local runner writes
the same parts in its own process (:func:`map_to_parts`), so both runners give the same
checkpoint.

The Prefect and Dask wiring lives in :mod:`flows.campaign`; this module is plain functions.
"""
from __future__ import annotations

import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tasks.campaign.checkpoint_parts import Part, write_part
from tasks.core.errors import ConfigError
from tasks.core.io import atomic_write_parquet

PARTITION_DIR_PREFIX = ".partitions-"
ARRAY_COLUMN = "value"


@dataclass(frozen=True)
class ParquetArg:
    """A partition argument stored as Parquet: a frame, or a 1-D array in column ``value``;
    with ``row_group``, that row group of the file (``columns`` of it; ``rows`` rows), so a
    partition of a stage checkpoint is read where it is used, never by the driver."""

    path: str
    kind: str  # "frame" | "array"
    row_group: int | None = None
    columns: tuple[str, ...] | None = None
    rows: int | None = None

    def __len__(self) -> int:
        if self.rows is None:
            raise TypeError("the row count of this partition argument is not known")
        return self.rows


def row_group_args(paths: str | Path | Sequence[str | Path],
                   columns: Sequence[str] | None = None) -> list[ParquetArg]:
    """One :class:`ParquetArg` per row group of the Parquet file(s) ``paths`` (e.g. the parts
    of a checkpoint), in file order."""
    cols = tuple(columns) if columns is not None else None
    out = []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        meta = pq.ParquetFile(path).metadata
        out += [ParquetArg(str(path), "frame", i, cols, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
    return out


def make_partition_dir(root: str | Path) -> Path:
    """A fresh, uniquely named partition folder ``<root>/.partitions-XXXX`` for one stage run."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=PARTITION_DIR_PREFIX, dir=root))


def remove_partition_dirs(root: str | Path) -> list[Path]:
    """Delete partition folders a killed run left under ``root`` (call while holding the lock)."""
    root = Path(root)
    gone = []
    if root.is_dir():
        for d in root.glob(f"{PARTITION_DIR_PREFIX}*"):
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
                gone.append(d)
    return gone


def spill_args(args: Sequence[tuple], folder: str | Path) -> list[tuple]:
    """Write the DataFrame and array arguments of each partition to Parquet under ``folder``.

    Returns the argument tuples with those values replaced by :class:`ParquetArg` (paths);
    small arguments (paths, dates, names, models, functions) stay as they are. The input
    frames are not modified.
    """
    folder = Path(folder)
    out = []
    for i, tup in enumerate(args):
        new = []
        for j, value in enumerate(tup):
            path = folder / f"in-{i:05d}-{j}.parquet"
            if isinstance(value, pd.DataFrame):
                atomic_write_parquet(value, path)
                new.append(ParquetArg(str(path), "frame"))
            elif isinstance(value, np.ndarray):
                if value.ndim != 1:
                    raise ConfigError(f"partition argument {j} of partition {i}: only 1-D arrays can be partitioned, "
                                      f"got shape {value.shape}")
                atomic_write_parquet(pd.DataFrame({ARRAY_COLUMN: value}), path)
                new.append(ParquetArg(str(path), "array"))
            else:
                new.append(value)
        out.append(tuple(new))
    return out


def load_arg(value: Any) -> Any:
    """The value of one partition argument (reads a :class:`ParquetArg` back; others as given)."""
    if not isinstance(value, ParquetArg):
        return value
    if value.row_group is not None:
        columns = list(value.columns) if value.columns is not None else None
        # split_blocks: one array per column as read, without copying them into 2-D blocks first
        df = pq.ParquetFile(value.path).read_row_group(value.row_group, columns=columns).to_pandas(split_blocks=True)
        df.attrs = {}
        return df
    df = pd.read_parquet(value.path)
    df.attrs = {}
    return df[ARRAY_COLUMN].to_numpy() if value.kind == "array" else df


def run_partition(fn: Callable[..., pd.DataFrame], args: tuple, folder: str | Path, index: int) -> Part:
    """Run ``fn`` on one partition's arguments and write its frame as part ``index`` of the
    part folder being written at ``folder``.

    Runs where the rows are (a Dask worker, or the local process); returns small facts only,
    so the frame never travels through the orchestrator.
    """
    result = fn(*(load_arg(a) for a in args))
    if not isinstance(result, pd.DataFrame):
        raise ConfigError(f"partition function {getattr(fn, '__name__', fn)} returned {type(result).__name__}, "
                          f"not a DataFrame")
    return write_part(result, folder, index)


def map_to_parts(fn: Callable[..., pd.DataFrame], args: Iterable[tuple], folder: str | Path) -> Iterator[Part]:
    """``fn`` over each partition's arguments in this process, in order, lazily, each result
    written as its part of ``folder`` before the next is computed (one partition in memory)."""
    for i, a in enumerate(args):
        yield run_partition(fn, a, folder, i)


def scheduler_host_port(address: str) -> tuple[str, int]:
    """Host and port of a Dask scheduler address such as ``tcp://10.0.0.5:8786``."""
    text = str(address).strip()
    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    if parts.scheme not in ("tcp", "tls"):
        raise ConfigError(f"runner.address {address!r}: expected tcp://host:port (or tls://host:port)")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigError(f"runner.address {address!r}: expected tcp://host:port, e.g. tcp://scheduler:8786")
    return parts.hostname, port


def check_scheduler_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise :class:`ConfigError` naming ``address`` when no scheduler accepts a connection there.

    A plain TCP connect with a short timeout, so a wrong address fails in seconds instead of
    waiting for the Dask client's own connection timeout.
    """
    host, port = scheduler_host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"runner.address {address}: no Dask scheduler reachable ({reason}); start one "
            f"(dask scheduler) and its workers, or leave runner.address unset for a LocalCluster") from None
