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

A stage computed partition by partition (``factors`` and ``score``: the store's ``parted``
stages) keeps a folder of part files instead, still named ``stages/NN_<stage>.parquet`` (a
Parquet dataset folder: pandas, pyarrow and DuckDB read it as one table): ``part-00000.parquet``,
``part-00001.parquet``, ... in partition order and ``_checkpoint.json``, the record (key,
fingerprint, rows, seconds, info, and each part's file name, rows and sha256, the record
hashed too). The parts are written where the rows are (a Dask worker, or this process with
the local runner: :func:`write_part`) into a hidden folder beside the checkpoint, each
atomically and hashed as written, with its rows' hashes beside it; the driver then seals the
folder (:meth:`CheckpointStore.seal`): it makes the fingerprint from those row hashes (8 bytes
a row, one part at a time; the same digest as a single file of the same rows), writes the
record and renames the folder into place. It never reads a part's rows. Verifying it reads
every part once against its recorded hash, as for a single file; a folder without a record
(a killed write) is hidden and removed as a partial file.

The campaign folder's ``.lock`` is a :class:`tasks.core.locks.PidLock`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.campaign.checkpoint_parts import (
    PART_RECORD, RECORD_HASH, ColumnReader, HashingFile, StagedParts, record_hash, replace_folder,
    row_hashes_file, verify_parts, write_hashed, write_part,
)
from tasks.core.io import ChunkedFingerprint, atomic_write, atomic_write_text, frame_fingerprint, stable_hash
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


def _write_checkpoint(table: pa.Table, record: dict, tmp: Path) -> None:
    """Write ``table`` with ``record`` in the footer, then put the file's hash into the record."""
    text = json.dumps({HASH_FIELD: _HOLE, **record}, default=_json_default)
    _seal(tmp, write_hashed(table, tmp, {ATTRS_KEY: text}))


def _seal(tmp: Path, written: HashingFile | None = None) -> None:
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

    ``stages`` are the checkpointed stages in order; a stage's checkpoint is numbered by its
    position (``stages/NN_<stage>.parquet``, NN from 01): a single file, or for a stage in
    ``parted`` a folder of part files (see the module doc).
    """

    def __init__(self, folder: CampaignPaths | str | Path, stages: list[str], parted: Iterable[str] = ()) -> None:
        self.paths = folder if isinstance(folder, CampaignPaths) else CampaignPaths(Path(folder))
        self.root = self.paths.folder
        self.stages = list(stages)
        self.parted = frozenset(parted)
        unknown = sorted(self.parted - set(self.stages))
        if unknown:
            raise KeyError(f"parted stage(s) {unknown} are not among the stages {self.stages}")

    @property
    def stage_dir(self) -> Path:
        return self.paths.stage_dir

    def path(self, stage: str) -> Path:
        """Checkpoint of ``stage`` (a file, or the part folder of a parted stage)."""
        if stage not in self.stages:
            raise KeyError(f"unknown stage {stage!r}; stages are {self.stages}")
        return self.paths.stage(self.stages.index(stage), stage)

    def _raw_record(self, stage: str) -> dict:
        if stage in self.parted:
            path = self.path(stage)
            if not path.is_dir():
                raise ValueError("a single file, not the folder of parts this stage keeps (written by an older version)")
            raw = json.loads((path / PART_RECORD).read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or raw.get(RECORD_HASH) != record_hash(raw):
                raise ValueError(f"{PART_RECORD} does not match its recorded hash")
            return raw
        meta = pq.read_metadata(self.path(stage)).metadata or {}
        if ATTRS_KEY.encode() not in meta:
            raise ValueError("no checkpoint record in the footer (written by hand or by an older version)")
        raw = json.loads(meta[ATTRS_KEY.encode()])
        if not isinstance(raw, dict) or HASH_FIELD not in raw:
            raise ValueError("the checkpoint record carries no file hash")
        return raw

    def record(self, stage: str) -> Checkpoint | None:
        """The checkpoint record of ``stage`` (from the footer, or a part folder's record), or
        None when absent/unreadable.

        The record alone is not verified; :meth:`valid` and :meth:`verify` check the file's hash.
        """
        path = self.path(stage)
        if not path.exists():
            return None
        try:
            raw = self._raw_record(stage)
            return Checkpoint(stage, path, raw["key"], raw["fingerprint"], int(raw["rows"]),
                              float(raw["seconds"]), dict(raw.get("info", {})))
        except (OSError, KeyError, ValueError, TypeError, AttributeError, pa.ArrowException):
            return None

    def files(self, stage: str) -> list[Path]:
        """The Parquet file(s) holding ``stage``'s rows, in row order: the checkpoint file, or
        the parts its record lists (read without verifying them)."""
        if stage not in self.parted:
            return [self.path(stage)]
        folder = self.path(stage)
        return [folder / str(p["file"]) for p in self._raw_record(stage)["parts"]]

    def verify(self, stage: str) -> str | None:
        """None when ``stage``'s checkpoint is intact, else what is wrong with it (absent included)."""
        path = self.path(stage)
        if not path.exists():
            return "missing"
        if stage in self.parted and not path.is_dir():
            return "a single file where this stage keeps a folder of parts (written by an older version)"
        try:
            recorded = self._raw_record(stage)
            if stage in self.parted:
                return verify_parts(path, recorded["parts"])
            actual = file_hash(path)
        except (OSError, KeyError, ValueError, TypeError, AttributeError, pa.ArrowException) as exc:
            return f"unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        if actual != recorded[HASH_FIELD]:
            return f"content hash {actual[:12]}... differs from the recorded {str(recorded[HASH_FIELD])[:12]}..."
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
        """The rows of ``stage``'s checkpoint (of a part folder: its parts in order, as one frame)."""
        files = self.files(stage)
        df = pd.read_parquet(files[0] if len(files) == 1 else [str(f) for f in files], columns=columns)
        df.attrs = {}
        return df

    def columns(self, stage: str) -> "ColumnReader":
        """A reader of ``stage``'s checkpoint one column at a time (its files opened once)."""
        return ColumnReader(self.files(stage))

    def remove_partial_files(self) -> list[Path]:
        """Delete temporary files (and part folders) a killed write left behind (call while
        holding the lock)."""
        gone = []
        for folder in (self.root, self.stage_dir):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    if tmp.is_dir() and not tmp.is_symlink():
                        shutil.rmtree(tmp, ignore_errors=True)
                    else:
                        tmp.unlink(missing_ok=True)
                    gone.append(tmp)
        return gone

    def begin(self, stage: str) -> Path:
        """A fresh hidden folder beside ``stage``'s checkpoint to write its parts into
        (:func:`write_part`); :meth:`seal` puts it in place."""
        if stage not in self.parted:
            raise KeyError(f"stage {stage!r} keeps a single file; parted stages are {sorted(self.parted)}")
        target = self.path(stage)
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=self.stage_dir))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(folder, 0o777 & ~umask)  # mkdtemp makes it private; a plain mkdir would not
        return folder

    def seal(self, stage: str, key: str, staged: StagedParts, started: float,
             info: dict | None = None) -> Checkpoint:
        """Commit the parts written into ``staged.folder`` as the checkpoint of ``stage``.

        The fingerprint is made from the parts' row hashes, one part at a time (the rows are
        not read), the record written into the folder and the folder renamed into place.
        ``started``: the stage's ``time.perf_counter()`` start.
        """
        folder = Path(staged.folder)
        try:
            return self._seal(stage, key, folder, sorted(staged.parts, key=lambda p: p.index), started, info)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _seal(self, stage: str, key: str, folder: Path, parts: list, started: float, info: dict | None) -> Checkpoint:
        if not parts:
            raise ValueError(f"stage {stage}: no part to write (not even an empty one)")
        if [p.index for p in parts] != list(range(len(parts))):
            raise ValueError(f"stage {stage}: parts {[p.index for p in parts]} are not 0..{len(parts) - 1}")
        fp = ChunkedFingerprint()
        for p in parts:
            hashes_path = folder / row_hashes_file(p.file)
            hashes = np.fromfile(hashes_path, dtype=np.uint64)
            if len(hashes) != p.rows:
                raise ValueError(f"stage {stage}: part {p.file} has {p.rows} rows but {len(hashes)} row hashes")
            fp.update_hashes(list(p.dtypes), hashes)
            hashes_path.unlink()
        fault_point(stage)
        record = {"key": key, "fingerprint": fp.hexdigest(), "rows": int(fp.rows),
                  "seconds": round(float(time.perf_counter() - started), 4), "info": info or {},
                  "parts": [{"file": p.file, "rows": p.rows, "sha256": p.sha256} for p in parts]}
        record = json.loads(json.dumps(record, default=_json_default))
        record[RECORD_HASH] = record_hash(record)
        atomic_write_text(json.dumps(record, indent=1), folder / PART_RECORD)
        replace_folder(folder, self.path(stage))
        return Checkpoint(stage, self.path(stage), key, record["fingerprint"], record["rows"],
                          float(record["seconds"]), record["info"])

    def write(self, stage: str, key: str, df: pd.DataFrame, seconds: float,
              info: dict | None = None) -> Checkpoint:
        """Commit ``df`` as the checkpoint of ``stage`` atomically, its record and hash in the
        footer (a parted stage: as a folder of one part)."""
        fault_point(stage)
        if stage in self.parted:
            return self.write_chunks(stage, key, [df], time.perf_counter() - float(seconds), info)
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
        part folder of parted ``stage``, one part a chunk, one chunk in memory at a time; the
        same fingerprint as :meth:`write` of their concatenation. ``started``: the stage's
        ``time.perf_counter()`` start (its seconds count until the folder is sealed)."""
        folder = self.begin(stage)
        try:
            parts = tuple(write_part(chunk, folder, i) for i, chunk in enumerate(chunks))
            return self.seal(stage, key, StagedParts(folder, parts), started, info)
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
