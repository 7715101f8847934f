"""Buffered writing of API predictions to the append-only prediction log.

Requests add their rows to an in-memory buffer (a list append under a lock, microseconds);
a background thread writes the buffer as a new Parquet segment of the prediction log
(:mod:`tasks.monitoring.prediction_log`) every ``flush_seconds`` or as soon as ``flush_rows`` rows are
waiting, and once more at shutdown. Segment names are unique (time, process id, random
suffix, sequence number), so segments from earlier runs are never overwritten and the log
stays append-only across restarts. A hard kill (SIGKILL, power loss) loses at most the rows
added since the last flush. Every ``compact_every`` segments, at start and at shutdown the API
segments are merged into one (:func:`tasks.monitoring.prediction_log.compact_predictions`), so constant
traffic does not leave a file per flush behind.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from tasks.monitoring.prediction_log import COLUMNS, append_predictions, compact_predictions

log = logging.getLogger("uplift.api")


class PredictionLogBuffer:
    """Collects prediction rows and flushes them as log segments from a background thread."""

    def __init__(self, root: str | Path, flush_rows: int = 5000, flush_seconds: float = 2.0,
                 source: str = "api", max_buffer_rows: int = 2_000_000, compact_every: int = 300) -> None:
        self.root = Path(root)
        self.flush_rows = max(1, int(flush_rows))
        self.flush_seconds = float(flush_seconds)
        self.source = source
        self.max_buffer_rows = max_buffer_rows
        self.compact_every = max(2, int(compact_every))
        self.compactions = 0
        self._chunks: list[tuple] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._prefix = f"api-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._seq = 0
        self.rows_written = 0
        self.rows_dropped = 0
        self.segments_written = 0
        self.last_flush_at: str | None = None
        self.last_error: str | None = None

    @property
    def rows_buffered(self) -> int:
        return self._rows

    def add(self, time_ns: int, request_id: str, campaign_id: str | None,
            client_ids: Sequence[int | None], scores: np.ndarray, decisions: np.ndarray | None,
            model_name: str, model_version: str) -> None:
        """Queue the rows of one request (cheap; never touches the disk).

        ``time_ns`` is the request time in nanoseconds since the epoch (UTC).
        """
        with self._lock:
            if self._rows + len(scores) > self.max_buffer_rows:
                self.rows_dropped += len(scores)
                return
            self._chunks.append((time_ns, request_id, campaign_id, client_ids, scores, decisions,
                                 model_name, model_version))
            self._rows += len(scores)
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    def _frame(self, chunks: list[tuple]) -> pd.DataFrame:
        sizes = [len(c[4]) for c in chunks]
        rep = lambda j: np.repeat(np.array([c[j] for c in chunks], dtype=object), sizes)  # noqa: E731
        ids: list[int | None] = [i for c in chunks for i in c[3]]
        decisions = [d for c in chunks for d in (c[5].tolist() if c[5] is not None else [None] * len(c[4]))]
        return pd.DataFrame({
            "time": pd.to_datetime(np.repeat(np.array([c[0] for c in chunks], dtype=np.int64), sizes),
                                   unit="ns", utc=True),
            "source": self.source,
            "request_id": rep(1).astype(str),
            "campaign_id": pd.array(rep(2), dtype="string"),
            "client_id": pd.array(ids, dtype="Int64"),
            "score": np.concatenate([np.asarray(c[4], dtype=np.float64) for c in chunks]),
            "decision": pd.array(decisions, dtype="boolean"),
            "model_name": rep(6).astype(str),
            "model_version": rep(7).astype(str),
        })[COLUMNS]

    def flush(self) -> Path | None:
        """Write everything buffered as one new segment; returns its path (None when empty)."""
        with self._flush_lock:
            with self._lock:
                chunks, self._chunks, rows, self._rows = self._chunks, [], self._rows, 0
            if not chunks:
                return None
            self._seq += 1
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            segment = f"{self._prefix}-{stamp}-{self._seq:06d}"
            try:
                path = append_predictions(self.root, self._frame(chunks), segment)
            except Exception as exc:  # keep the rows and try again at the next flush
                with self._lock:
                    self._chunks[:0] = chunks
                    self._rows += rows
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("prediction log flush to %s failed: %s", self.root, self.last_error)
                return None
            self.rows_written += rows
            self.segments_written += 1
            self.last_flush_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            self.last_error = None
        if self.segments_written % self.compact_every == 0:
            self.compact()
        return path

    def compact(self) -> Path | None:
        """Merge the log's API segments (this and earlier servers'); errors are logged, not raised."""
        try:
            merged = compact_predictions(self.root, prefix="api-", min_segments=2)
        except Exception as exc:  # the segments stay as they are; reading them is unaffected
            log.error("prediction log compaction in %s failed: %s: %s", self.root, type(exc).__name__, exc)
            return None
        if merged is not None:
            self.compactions += 1
        return merged

    def _run(self) -> None:
        self.compact()  # what earlier servers left, off the request path
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def start(self) -> None:
        """Start the background flusher."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True, name="prediction-log")
            self._thread.start()

    def close(self) -> None:
        """Stop the flusher and write what is left (called at server shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()
        self.compact()

    def status(self) -> dict:
        """Counters for /health."""
        return {"dir": str(self.root), "rows_buffered": self._rows, "rows_written": self.rows_written,
                "rows_dropped": self.rows_dropped, "segments_written": self.segments_written,
                "compactions": self.compactions,
                "last_flush_at": self.last_flush_at, "last_error": self.last_error,
                "flush_rows": self.flush_rows, "flush_seconds": self.flush_seconds}
