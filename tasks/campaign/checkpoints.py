"""Stage checkpoints of a campaign.

A campaign folder (:class:`tasks.core.layout.CampaignPaths`) holds one Parquet checkpoint per
checkpointed stage (``stages/NN_<stage>.parquet``, :func:`tasks.core.layout.stage_file`). Each
checkpoint carries its own record in the Parquet footer's key-value metadata: the stage key (a
hash of the stage name, its config slice, the upstream checkpoint's fingerprint and, where
relevant, the model version and checksum and the data manifest), the fingerprint of its rows,
a small ``info`` dict for the summary, and the sha256 of the file itself. Because the record
travels inside the same atomically written file, a checkpoint is either complete and
self-describing or absent; a rerun reuses it exactly when the key it would compute now equals
the stored one and the file's bytes still hash to the recorded sha256.

The file hash covers every byte of the file (data pages, page headers, footer, the record)
except the 64 hex digits that hold it, which count as zeros: the record is written with
``"file_sha256": "000...0"``, the file is hashed as it is written (the zeros included), and
the digest is written over the zeros before the file is renamed into place. Checking it costs one sequential read of the file
(about 0.07 s for a 1M-row, 73 MB checkpoint; ``benchmarks/checkpoint_verify.py``), far
less than decoding it. A checkpoint that does not verify (a flipped byte, a truncated or
unreadable file, a file written before checkpoints carried a hash) is not reused: its stage is
recomputed and one warning line says so.

The campaign folder's ``.lock`` is a :class:`tasks.core.locks.PidLock`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.io import ChunkedFingerprint, atomic_write, frame_fingerprint, stable_hash
from tasks.core.layout import CampaignPaths, Layout

ATTRS_KEY = "uplift_checkpoint"
FAULT_ENV = "UPLIFT_FAULT_STAGE"
HASH_FIELD = "file_sha256"
_HOLE = "0" * 64
# The record's JSON starts with the hash field, so its digits sit right after this text.
_NEEDLE = ('{"' + HASH_FIELD + '": "').encode()

log = logging.getLogger("uplift.campaign")


def campaign_dir(artifacts: str | Path, campaign_id: str) -> Path:
    """Folder of campaign ``campaign_id`` under the artifacts root.

    Kept for callers outside the campaign package; new code asks
    ``Layout(artifacts).campaign(campaign_id)`` for the folder and its files.
    """
    return Layout(artifacts).campaign(campaign_id).folder


def stage_key(stage: str, config_slice: Any, upstream: str | None, extra: Any = None) -> str:
    """The validity key of a stage: a hash of everything its output depends on."""
    return stable_hash({"stage": stage, "config": config_slice, "upstream": upstream, "extra": extra})


def fault_point(stage: str) -> None:
    """A test hook: interrupt this process at ``stage`` when ``UPLIFT_FAULT_STAGE`` names it.

    ``UPLIFT_FAULT_STAGE=<stage>`` kills the process with SIGKILL; ``<stage>:hang`` makes it
    sleep (an hour) so a test can signal a run that is busy in a stage. Called after a stage
    computed its result and before it is committed (for ``freeze``: before campaign.parquet is
    written); a no-op unless the variable is set.
    """
    value = os.environ.get(FAULT_ENV)
    if value == stage:
        os.kill(os.getpid(), signal.SIGKILL)
    elif value == f"{stage}:hang":
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            time.sleep(0.1)


@dataclass(frozen=True)
class Checkpoint:
    """The stored record of one stage's checkpoint (the rows stay on disk)."""

    stage: str
    path: Path
    key: str
    fingerprint: str
    rows: int
    seconds: float
    info: dict = field(default_factory=dict)


def _hash_hole(path: Path) -> tuple[int, int]:
    """File size and offset of the 64 hash digits in the footer of checkpoint ``path``.

    Raises ValueError when the file is not a Parquet file whose footer holds exactly one record.
    """
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size < 12:
            raise ValueError("too short for a Parquet file")
        fh.seek(size - 8)
        tail = fh.read(8)
        if tail[4:] != b"PAR1":
            raise ValueError("no Parquet footer")
        footer_len = int.from_bytes(tail[:4], "little")
        start = size - 8 - footer_len
        if start < 4:
            raise ValueError("footer length out of range")
        fh.seek(start)
        footer = fh.read(footer_len)
    at = footer.find(_NEEDLE)
    if at < 0 or footer.find(_NEEDLE, at + 1) >= 0:
        raise ValueError("no single checkpoint record in the footer")
    return size, start + at + len(_NEEDLE)


def file_hash(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 of a checkpoint file with its 64 hash digits counted as zeros (see the module doc)."""
    path = Path(path)
    size, hole = _hash_hole(path)
    h = hashlib.sha256()
    pos = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            lo, hi = max(hole - pos, 0), min(hole + 64 - pos, len(block))
            if lo < hi:
                block = block[:lo] + b"0" * (hi - lo) + block[hi:]
            h.update(block)
            pos += len(block)
    if pos != size:
        raise ValueError("the file changed while it was read")
    return h.hexdigest()


class _HashingFile:
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


def _write_checkpoint(table: pa.Table, record: dict, tmp: Path) -> None:
    """Write ``table`` with ``record`` in the footer, then put the file's hash into the record."""
    text = json.dumps({HASH_FIELD: _HOLE, **record}, default=_json_default)
    sink = _HashingFile(tmp)
    try:
        with pq.ParquetWriter(sink, table.schema, compression="snappy") as writer:
            writer.write_table(table)
            writer.add_key_value_metadata({ATTRS_KEY: text})
    finally:
        sink.close()
    _seal(tmp, sink)


def _seal(tmp: Path, written: _HashingFile | None = None) -> None:
    """Put the hash of the written file ``tmp`` into the 64 zeros of its record: the hash of
    the bytes as ``written`` (its record held the zeros then), else of the file read back."""
    size, hole = _hash_hole(tmp)
    if written is not None and written.size == size:
        digest = written.sha.hexdigest()
    else:
        digest = file_hash(tmp)
    with open(tmp, "r+b") as fh:
        fh.seek(hole)
        fh.write(digest.encode())


class CheckpointStore:
    """Reads and writes the stage checkpoints of one campaign folder.

    ``stages`` are the checkpointed stages in order; a stage's file is numbered by its
    position (``stages/NN_<stage>.parquet``, NN from 01).
    """

    def __init__(self, folder: CampaignPaths | str | Path, stages: list[str]) -> None:
        self.paths = folder if isinstance(folder, CampaignPaths) else CampaignPaths(Path(folder))
        self.root = self.paths.folder
        self.stages = list(stages)

    @property
    def stage_dir(self) -> Path:
        return self.paths.stage_dir

    def path(self, stage: str) -> Path:
        """Checkpoint file of ``stage``."""
        if stage not in self.stages:
            raise KeyError(f"unknown stage {stage!r}; stages are {self.stages}")
        return self.paths.stage(self.stages.index(stage), stage)

    def _raw_record(self, stage: str) -> dict:
        meta = pq.read_metadata(self.path(stage)).metadata or {}
        if ATTRS_KEY.encode() not in meta:
            raise ValueError("no checkpoint record in the footer (written by hand or by an older version)")
        raw = json.loads(meta[ATTRS_KEY.encode()])
        if not isinstance(raw, dict) or HASH_FIELD not in raw:
            raise ValueError("the checkpoint record carries no file hash")
        return raw

    def record(self, stage: str) -> Checkpoint | None:
        """The checkpoint record of ``stage`` read from the footer, or None when absent/unreadable.

        The record alone is not verified; :meth:`valid` and :meth:`verify` check the file's hash.
        """
        path = self.path(stage)
        if not path.exists():
            return None
        try:
            raw = self._raw_record(stage)
            return Checkpoint(stage, path, raw["key"], raw["fingerprint"], int(raw["rows"]),
                              float(raw["seconds"]), dict(raw.get("info", {})))
        except (OSError, KeyError, ValueError, TypeError, pa.ArrowException):
            return None

    def verify(self, stage: str) -> str | None:
        """None when ``stage``'s checkpoint is intact, else what is wrong with it (absent included)."""
        path = self.path(stage)
        if not path.exists():
            return "missing"
        try:
            recorded = self._raw_record(stage)[HASH_FIELD]
            actual = file_hash(path)
        except (OSError, KeyError, ValueError, TypeError, pa.ArrowException) as exc:
            return f"unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        if actual != recorded:
            return f"content hash {actual[:12]}... differs from the recorded {str(recorded)[:12]}..."
        return None

    def valid(self, stage: str, key: str) -> Checkpoint | None:
        """The checkpoint of ``stage`` when it exists, was made with ``key`` and verifies; else None.

        A checkpoint that exists but is damaged (or unreadable) is reported in one warning line.
        """
        path = self.path(stage)
        if not path.exists():
            return None
        rec = self.record(stage)
        if rec is not None and rec.key != key:
            return None  # made with other settings: recomputed anyway
        problem = self.verify(stage)
        if problem is None and rec is None:
            problem = "its record is incomplete"
        if problem is not None:
            log.warning("checkpoint %s/%s does not verify (%s): recomputing stage %s",
                        path.parent.name, path.name, problem, stage)
            return None
        return rec

    def read(self, stage: str, columns: list[str] | None = None) -> pd.DataFrame:
        """The rows of ``stage``'s checkpoint."""
        df = pd.read_parquet(self.path(stage), columns=columns)
        df.attrs = {}
        return df

    def remove_partial_files(self) -> list[Path]:
        """Delete temporary files a killed write left behind (call while holding the lock)."""
        gone = []
        for folder in (self.root, self.stage_dir):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)
                    gone.append(tmp)
        return gone

    def write(self, stage: str, key: str, df: pd.DataFrame, seconds: float,
              info: dict | None = None) -> Checkpoint:
        """Commit ``df`` as the checkpoint of ``stage`` atomically, its record and hash in the footer."""
        fault_point(stage)
        out = df.reset_index(drop=True)
        fp = frame_fingerprint(out)
        record = {"key": key, "fingerprint": fp, "rows": int(len(out)), "seconds": round(float(seconds), 4),
                  "info": info or {}}
        record = json.loads(json.dumps(record, default=_json_default))
        table = pa.Table.from_pandas(out, preserve_index=False)
        atomic_write(self.path(stage), lambda tmp: _write_checkpoint(table, record, tmp))
        return Checkpoint(stage, self.path(stage), key, fp, len(out), float(seconds), record["info"])

    def write_chunks(self, stage: str, key: str, chunks: Iterable[pd.DataFrame], started: float,
                     info: dict | None = None) -> Checkpoint:
        """Commit the rows of ``chunks`` (frames with the same columns, in row order) as the
        checkpoint of ``stage``, one chunk in memory at a time; the same record (fingerprint
        included) as :meth:`write` of their concatenation. ``started``: the stage's
        ``time.perf_counter()`` start (its seconds count until the last chunk is written)."""
        made: dict = {}

        def make_record(fp: str, rows: int) -> dict:
            fault_point(stage)
            seconds = time.perf_counter() - started
            made.update(json.loads(json.dumps({"key": key, "fingerprint": fp, "rows": int(rows),
                                               "seconds": round(float(seconds), 4), "info": info or {}},
                                              default=_json_default)))
            return made

        atomic_write(self.path(stage), lambda tmp: _write_checkpoint_chunks(chunks, make_record, tmp))
        return Checkpoint(stage, self.path(stage), key, made["fingerprint"], made["rows"], float(made["seconds"]),
                          made["info"])


def _write_checkpoint_chunks(chunks: Iterable[pd.DataFrame], make_record: Callable[[str, int], dict],
                             tmp: Path) -> Checkpoint | None:
    """Write ``chunks`` (one row group or more each) with the record ``make_record(fingerprint,
    rows)`` in the footer, then seal the file's hash into it."""
    fp = ChunkedFingerprint()
    writer = None
    schema = None
    sink: _HashingFile | None = None
    try:
        for chunk in chunks:
            chunk = chunk.reset_index(drop=True)
            fp.update(chunk)
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                schema = table.schema
                sink = _HashingFile(tmp)
                writer = pq.ParquetWriter(sink, schema, compression="snappy")
            elif not table.schema.equals(schema):
                raise ValueError(f"chunk schema {table.schema} differs from the first chunk's {schema}")
            writer.write_table(table)
        if writer is None:
            raise ValueError("no chunk to write (not even an empty one)")
        record = make_record(fp.hexdigest(), fp.rows)
        writer.add_key_value_metadata({ATTRS_KEY: json.dumps({HASH_FIELD: _HOLE, **record}, default=_json_default)})
    finally:
        if writer is not None:
            writer.close()
        if sink is not None:
            sink.close()
    _seal(tmp, sink)
    return None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
