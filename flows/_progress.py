"""Console progress of long steps: what runs, how many rows, how long so far.

Wiring for the flows, over any ``log(message)`` callable (a Prefect run logger's ``info``):

- :func:`heartbeat` logs ``<what>: still running, 30 s`` every 15 seconds
  (``UPLIFT_HEARTBEAT_SECONDS``) while a block runs, so a stage that takes minutes (factors or scoring of a million clients in one
  partition) is never silent; a block that ends sooner logs nothing.
- :func:`progress_mapper` wraps the partition mapper of the factor and score stages: the
  local runner logs a line as each partition ends (rows, rows so far, elapsed); a cluster
  runner logs when the partitions are sent and when all are back. (The stage's own
  heartbeat covers the time in between.)

Nothing below flows/ logs or prints; the tasks only take such callables where they report
progress themselves (training's candidates).
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

from tasks.campaign.checkpoint_parts import Part
from tasks.campaign.partitions import map_to_parts
from tasks.campaign.stages import Mapper

Log = Callable[[str], None]

HEARTBEAT_ENV = "UPLIFT_HEARTBEAT_SECONDS"
HEARTBEAT_SECONDS = 15.0


def heartbeat_seconds() -> float:
    """Seconds between heartbeat lines: ``UPLIFT_HEARTBEAT_SECONDS`` or 15."""
    try:
        value = float(os.environ.get(HEARTBEAT_ENV, HEARTBEAT_SECONDS))
    except ValueError:
        return HEARTBEAT_SECONDS
    return value if value > 0 else HEARTBEAT_SECONDS

# what each per-partition function computes, for the progress lines
PARTITION_LABELS = {"factor_partition": "factors", "table_partition": "factors", "score_partition": "score"}


@contextlib.contextmanager
def heartbeat(log: Log, what: str, every: float | None = None) -> Iterator[None]:
    """Log ``<what>: still running, <n> s`` every ``every`` seconds (default
    :func:`heartbeat_seconds`) until the block ends."""
    every = heartbeat_seconds() if every is None else every
    stop = threading.Event()
    t0 = time.perf_counter()

    def beat() -> None:
        while not stop.wait(every):
            try:
                log(f"{what}: still running, {time.perf_counter() - t0:.0f} s")
            except Exception:  # a closed log handler must not break the run
                return

    thread = threading.Thread(target=beat, name=f"heartbeat {what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=1.0)


def _rows(arg: Any) -> int | None:
    try:
        return len(arg)
    except TypeError:
        return None


def progress_mapper(mapper: Mapper | None, log: Log) -> Mapper:
    """``mapper`` (None: one partition after another in this process) with progress lines.

    The partitions' client count is the length of each argument tuple's last item (the
    client ids of a factor partition, the factor rows of a score partition).
    """

    def label(fn: Callable[..., Any]) -> str:
        name = getattr(fn, "__name__", "partitions")
        return PARTITION_LABELS.get(name, name)

    def local(fn: Callable[..., pd.DataFrame], args: list[tuple], folder: Path) -> Iterator[Part]:
        what, n = label(fn), len(args)
        sizes = [_rows(a[-1]) if a else None for a in args]
        total = sum(s for s in sizes if s is not None)
        if n > 1:
            log(f"{what}: {total:,} clients in {n} partitions")
        done, t0 = 0, time.perf_counter()
        for i, part in enumerate(map_to_parts(fn, args, folder), 1):
            done += part.rows
            if n > 1:
                log(f"{what}: partition {i}/{n} done, {part.rows:,} rows ({done:,} of {total:,}), "
                    f"{time.perf_counter() - t0:.1f} s elapsed")
            yield part

    if mapper is None:
        return local

    def remote(fn: Callable[..., pd.DataFrame], args: list[tuple], folder: Path) -> Iterator[Part]:
        what, t0 = label(fn), time.perf_counter()
        total = sum(s for s in (_rows(a[-1]) if a else None for a in args) if s is not None)
        log(f"{what}: {total:,} clients in {len(args)} partitions sent to the cluster")
        rows = 0
        for part in mapper(fn, args, folder):
            rows += part.rows
            yield part
        log(f"{what}: {len(args)} partitions back, {rows:,} rows, {time.perf_counter() - t0:.1f} s")

    return remote
