"""The prediction log: idempotent campaign segments, compaction of API segments, and a
compaction cut short never showing a row twice."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from api.logbuffer import PredictionLogBuffer
from tasks.monitoring.prediction_log import COLUMNS, append_predictions, compact_predictions, read_predictions


def rows(n: int, source: str, start: int = 0, campaign: str | None = None) -> pd.DataFrame:
    return pd.DataFrame({
        "time": pd.to_datetime(1_700_000_000 + np.arange(start, start + n), unit="s", utc=True),
        "source": source, "request_id": [f"r{i}" for i in range(start, start + n)],
        "campaign_id": pd.array([campaign] * n, dtype="string"),
        "client_id": pd.array(np.arange(start, start + n), dtype="Int64"),
        "score": np.linspace(0, 1, n), "decision": pd.array([True] * n, dtype="boolean"),
        "model_name": "m", "model_version": "v0001",
    })[COLUMNS]


def test_compaction_merges_api_segments_and_leaves_campaign_segments(tmp_path):
    root = tmp_path / "predictions"
    append_predictions(root, rows(5, "campaign", campaign="c1"), "c1")
    for i in range(4):
        append_predictions(root, rows(3, "api", start=10 * i), f"api-1-seg{i}")
    before = read_predictions(root).sort_values(["source", "request_id"]).reset_index(drop=True)
    merged = compact_predictions(root, min_segments=2)
    assert merged is not None and merged.name.startswith("compacted-api-")
    assert sorted(p.name for p in root.glob("*.parquet")) == sorted(["c1.parquet", merged.name])
    after = read_predictions(root).sort_values(["source", "request_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(after, before)
    # a campaign rerun is still a no-op: its segment was not touched
    append_predictions(root, rows(5, "campaign", campaign="c1"), "c1")
    assert len(read_predictions(root, campaign_id="c1")) == 5
    # too few new segments: nothing to do
    append_predictions(root, rows(2, "api", start=100), "api-2-seg0")
    assert compact_predictions(root, min_segments=2) is None
    assert len(read_predictions(root, source="api")) == 14


def test_a_compaction_cut_short_shows_no_row_twice_and_is_finished_later(tmp_path):
    root = tmp_path / "predictions"
    for i in range(3):
        append_predictions(root, rows(4, "api", start=10 * i), f"api-1-seg{i}")
    merged = compact_predictions(root)
    # put the originals back, as if the process died after writing the merged file
    table = pq.read_table(merged)
    held = json.loads(table.schema.metadata[b"uplift.prediction_log.segments"])
    assert held == ["api-1-seg0", "api-1-seg1", "api-1-seg2"]
    for i, name in enumerate(held):
        rows(4, "api", start=10 * i).to_parquet(root / f"{name}.parquet", index=False)
    assert len(read_predictions(root)) == 12
    append_predictions(root, rows(4, "api", start=50), "api-1-seg3")
    second = compact_predictions(root, min_segments=1)
    assert second is not None
    assert sorted(p.name for p in root.glob("*.parquet")) == sorted([merged.name, second.name])
    assert len(read_predictions(root)) == 16 and read_predictions(root)["request_id"].is_unique


def test_compaction_skips_while_another_process_holds_the_lock(tmp_path):
    root = tmp_path / "predictions"
    for i in range(3):
        append_predictions(root, rows(2, "api", start=10 * i), f"api-1-seg{i}")
    import subprocess
    import sys

    code = (f"from tasks.core.locks import PidLock; l = PidLock({str(root / '.compact.lock')!r}); l.acquire(); "
            "print('held', flush=True); import time; time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert compact_predictions(root) is None and len(list(root.glob("api-*.parquet"))) == 3
    finally:
        holder.kill()
        holder.wait()
    assert compact_predictions(root) is not None  # the holder is gone: its lock with it


def test_log_buffer_compacts_every_n_segments_and_at_shutdown(tmp_path):
    root = tmp_path / "predictions"
    buf = PredictionLogBuffer(root, flush_rows=10**6, flush_seconds=3600, compact_every=3)
    for i in range(7):
        buf.add(1_700_000_000_000_000_000 + i, f"r{i}", None, [i], np.array([0.5]), None, "m", "v0001")
        buf.flush()
    assert buf.compactions == 2  # after segments 3 and 6
    assert len(list(root.glob("api-*.parquet"))) == 1
    buf.add(1_700_000_000_000_000_007, "r7", None, [7], np.array([0.5]), None, "m", "v0001")
    buf.close()  # flushes r7 and merges it with segment 7
    assert buf.compactions == 3 and not list(root.glob("api-*.parquet"))
    log = read_predictions(root)
    assert sorted(log["request_id"]) == [f"r{i}" for i in range(8)]
    assert buf.status()["compactions"] == 3


def test_temp_files_of_a_killed_write_are_removed_by_the_next_writer(tmp_path):
    import os
    import time

    root = tmp_path / "predictions"
    root.mkdir()
    old = root / ".campaign-x.parquet.ab12cd.tmp"
    fresh = root / ".api-1-seg0.parquet.ef34gh.tmp"   # a write in progress elsewhere
    for f in (old, fresh):
        f.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    append_predictions(root, rows(3, "campaign", campaign="x"), "campaign-x")
    assert not old.exists() and fresh.exists()
    assert len(read_predictions(root)) == 3
