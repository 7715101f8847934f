"""Checkpoint store and campaign lock: validity by key, atomic records, stale-lock recovery."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tasks.campaign.checkpoint_parts import PART_RECORD, StagedParts, write_part
from tasks.campaign.checkpoints import CheckpointStore, stage_key
from tasks.core.io import frame_fingerprint
from tasks.core.locks import PidLock
from tasks.core.errors import StateError

STAGES = ["alpha", "beta"]


def _frame(n: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"client_id": np.arange(n, dtype="int64"), "x": np.linspace(0, 1, n)})


def test_checkpoint_roundtrip_and_validity(tmp_path):
    store = CheckpointStore(tmp_path, STAGES)
    key = stage_key("alpha", {"a": 1}, None)
    df = _frame()
    rec = store.write("alpha", key, df, seconds=0.5, info={"removed": {"f": 3}})
    assert store.path("alpha").name == "01_alpha.parquet"
    assert store.valid("alpha", key) == rec
    assert store.record("alpha").info == {"removed": {"f": 3}}
    pd.testing.assert_frame_equal(store.read("alpha"), df)
    assert df.attrs == {}  # the input frame is not touched
    other = stage_key("alpha", {"a": 2}, None)
    assert other != key
    assert store.valid("alpha", other) is None
    assert store.valid("beta", key) is None


def test_key_depends_on_upstream_and_extra():
    base = stage_key("beta", {"p": 1}, "up1", {"model": "v1"})
    assert base == stage_key("beta", {"p": 1}, "up1", {"model": "v1"})
    assert base != stage_key("beta", {"p": 1}, "up2", {"model": "v1"})
    assert base != stage_key("beta", {"p": 1}, "up1", {"model": "v2"})


def test_garbage_checkpoint_is_not_valid(tmp_path):
    store = CheckpointStore(tmp_path, STAGES)
    store.stage_dir.mkdir(parents=True)
    store.path("alpha").write_bytes(b"not parquet")
    assert store.record("alpha") is None
    with pytest.raises(KeyError, match="unknown stage"):
        store.path("gamma")


def test_lock_refuses_second_holder_and_releases(tmp_path):
    path = tmp_path / ".lock"
    with PidLock(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with pytest.raises(StateError, match="locked by process"):
            PidLock(path).acquire()
    assert not path.exists()
    with PidLock(path):
        pass


def test_lock_held_by_live_subprocess_is_refused(tmp_path):
    path = tmp_path / ".lock"
    code = (
        "import sys,time; from tasks.core.locks import PidLock\n"
        f"l=PidLock({str(path)!r}); l.acquire(); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(StateError, match=str(proc.pid)):
            PidLock(path).acquire()
    finally:
        proc.kill()
        proc.wait()
    # The holder is dead now: its lock is stale and is taken over.
    with PidLock(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_stale_lock_from_dead_pid_is_recovered(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    path = tmp_path / ".lock"
    path.write_text(json.dumps({"pid": proc.pid, "host": os.uname().nodename, "since": time.time()}))
    with PidLock(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_partial_files_of_a_killed_write_are_removed(tmp_path):
    store = CheckpointStore(tmp_path, STAGES)
    rec = store.write("alpha", "k", _frame(), seconds=0.1)
    leftover = store.stage_dir / ".02_beta.parquet.abc123.tmp"
    leftover.write_bytes(b"half")
    assert store.remove_partial_files() == [leftover]
    assert not leftover.exists() and store.valid("alpha", "k") == rec


def test_every_flipped_byte_of_a_checkpoint_is_caught(tmp_path):
    """The file hash covers every byte: data pages, page headers, footer, the record, the hash."""
    store = CheckpointStore(tmp_path, STAGES)
    store.write("alpha", "k", _frame(40), seconds=0.1, info={"note": "x"})
    path = store.path("alpha")
    good = path.read_bytes()
    assert store.verify("alpha") is None
    missed = []
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x01
        path.write_bytes(bytes(bad))
        if store.verify("alpha") is None:
            missed.append(i)
    assert missed == []
    path.write_bytes(good[:-100])
    assert "unreadable" in store.verify("alpha")
    path.write_bytes(good)
    assert store.valid("alpha", "k") is not None


def test_a_checkpoint_that_does_not_verify_is_not_reused_and_said_so(tmp_path, caplog):
    store = CheckpointStore(tmp_path, STAGES)
    df = _frame()
    store.write("alpha", "k", df, seconds=0.1)
    data = bytearray(store.path("alpha").read_bytes())
    pages_end = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    data[pages_end // 2] ^= 0xFF  # in a data page
    store.path("alpha").write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="uplift.campaign"):
        assert store.valid("alpha", "k") is None
    assert [r.getMessage() for r in caplog.records] == [
        f"checkpoint stages/01_alpha.parquet does not verify ({store.verify('alpha')}): recomputing stage alpha"]
    # a file written without a hash (an older checkpoint, or by hand) is not reused either
    caplog.clear()
    df.to_parquet(store.path("alpha"), index=False)
    with caplog.at_level("WARNING", logger="uplift.campaign"):
        assert store.valid("alpha", "k") is None
    assert "no checkpoint record in the footer" in caplog.records[0].getMessage()
    # another key is recomputed anyway: no warning, no hash computed
    store.write("alpha", "k", df, seconds=0.1)
    caplog.clear()
    assert store.valid("alpha", "other") is None and caplog.records == []
    pd.testing.assert_frame_equal(store.read("alpha"), df)


def test_hang_fault_hook_sleeps_only_at_its_stage(tmp_path):
    code = ("import os, time; from tasks.campaign.checkpoints import fault_point\n"
            "fault_point('beta'); print('passed beta', flush=True); fault_point('alpha'); print('passed alpha')")
    env = {**os.environ, "UPLIFT_FAULT_STAGE": "alpha:hang"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "passed beta"
        time.sleep(1.0)
        assert proc.poll() is None  # still sleeping in alpha
    finally:
        proc.kill()
        proc.wait()


def test_checkpoint_is_sealed_with_the_hash_of_its_bytes_as_written(tmp_path, monkeypatch):
    import tasks.campaign.checkpoints as checkpoints

    store = CheckpointStore(tmp_path, STAGES, parted=["beta"])
    real_hash = checkpoints.file_hash

    def no_reread(path, *a, **k):
        raise AssertionError("a checkpoint being written is read back to hash it")

    monkeypatch.setattr(checkpoints, "file_hash", no_reread)
    store.write("alpha", "k", _frame(5000), seconds=0.1)
    store.write_chunks("beta", "k", iter([_frame(3000), _frame(2000)]), started=time.perf_counter())
    monkeypatch.setattr(checkpoints, "file_hash", real_hash)
    for stage in STAGES:  # the recorded hash is the file's, its digits counted as zeros
        assert store.verify(stage) is None and store.valid(stage, "k") is not None


# --------------------------------------------------------------------------- part folders
def _staged(store: CheckpointStore, stage: str, frames: list[pd.DataFrame]) -> StagedParts:
    folder = store.begin(stage)
    return StagedParts(folder, tuple(write_part(f, folder, i) for i, f in enumerate(frames)))


def test_a_part_folder_is_sealed_with_the_fingerprint_of_its_rows(tmp_path):
    whole = pd.DataFrame({"client_id": np.arange(900, dtype="int64"), "x": np.linspace(0, 1, 900),
                          "tag": pd.array(np.where(np.arange(900) % 3, "a", "b"), dtype="str")})
    single = CheckpointStore(tmp_path / "single", STAGES)
    parted = CheckpointStore(tmp_path / "parted", STAGES, parted=["beta"])
    ra = single.write("beta", "k", whole, seconds=0.1)
    frames = [whole.iloc[:400], whole.iloc[400:401], whole.iloc[401:]]
    rb = parted.seal("beta", "k", _staged(parted, "beta", frames), time.perf_counter(), {"partitions": 3})
    assert (rb.fingerprint, rb.rows) == (ra.fingerprint, 900) and rb.info == {"partitions": 3}
    folder = parted.path("beta")
    assert folder.is_dir() and folder.name == "02_beta.parquet"
    assert sorted(p.name for p in folder.iterdir()) == [PART_RECORD, "part-00000.parquet", "part-00001.parquet",
                                                         "part-00002.parquet"]  # no row hashes left
    assert parted.valid("beta", "k") == rb and parted.verify("beta") is None
    pd.testing.assert_frame_equal(parted.read("beta"), whole)
    pd.testing.assert_frame_equal(pd.read_parquet(folder), whole)  # a Parquet dataset folder to any reader
    pd.testing.assert_frame_equal(parted.read("beta", columns=["x"]), whole[["x"]])
    with parted.columns("beta") as cols:
        assert cols.names == ["client_id", "x", "tag"] and np.array_equal(cols.column("x"), whole["x"].to_numpy())
    assert parted.files("beta") == [folder / f"part-0000{i}.parquet" for i in range(3)]
    # write() and write_chunks() of a parted stage give the same record
    again = CheckpointStore(tmp_path / "again", STAGES, parted=["beta"])
    assert again.write("beta", "k", whole, seconds=0.1).fingerprint == ra.fingerprint
    assert again.write_chunks("beta", "k", iter(frames), time.perf_counter()).fingerprint == ra.fingerprint
    with pytest.raises(KeyError, match="keeps a single file"):
        single.begin("beta")


def test_a_damaged_or_incomplete_part_folder_is_not_reused(tmp_path, caplog):
    store = CheckpointStore(tmp_path, STAGES, parted=["beta"])
    frames = [_frame(30), _frame(20)]
    store.seal("beta", "k", _staged(store, "beta", frames), time.perf_counter())
    folder = store.path("beta")
    part = folder / "part-00001.parquet"
    good = part.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    part.write_bytes(bytes(bad))
    assert store.verify("beta").startswith("part part-00001.parquet: content hash")
    with caplog.at_level("WARNING", logger="uplift.campaign"):
        assert store.valid("beta", "k") is None
    assert "02_beta.parquet does not verify" in caplog.records[0].getMessage()
    part.write_bytes(good)
    assert store.valid("beta", "k") is not None
    # a stray part, an edited record, a missing record: not reused
    (folder / "part-00009.parquet").write_bytes(good)
    assert "unexpected part part-00009.parquet" in store.verify("beta")
    (folder / "part-00009.parquet").unlink()
    record = json.loads((folder / PART_RECORD).read_text())
    (folder / PART_RECORD).write_text(json.dumps({**record, "rows": 49}))
    assert "does not match its recorded hash" in store.verify("beta") and store.record("beta") is None
    (folder / PART_RECORD).unlink()
    assert store.valid("beta", "k") is None and store.record("beta") is None
    # a single file where the folder belongs (an older version's checkpoint) is replaced by the folder
    import shutil

    shutil.rmtree(folder)
    CheckpointStore(tmp_path, STAGES).write("beta", "k", _frame(50), seconds=0.1)
    assert "older version" in store.verify("beta") and store.valid("beta", "k") is None
    rec = store.write_chunks("beta", "k", iter(frames), time.perf_counter())
    assert store.path("beta").is_dir() and store.valid("beta", "k") == rec


def test_a_killed_part_write_leaves_only_a_hidden_folder_that_is_removed(tmp_path):
    store = CheckpointStore(tmp_path, STAGES, parted=["beta"])
    staged = _staged(store, "beta", [_frame(10)])
    assert staged.folder.name.startswith(".02_beta.parquet.") and staged.folder.name.endswith(".tmp")
    assert not store.path("beta").exists() and store.record("beta") is None
    assert store.remove_partial_files() == [staged.folder] and not staged.folder.exists()
    with pytest.raises(ValueError, match="no part to write"):
        store.seal("beta", "k", StagedParts(store.begin("beta"), ()), time.perf_counter())
    assert list(store.stage_dir.iterdir()) == []  # a failed seal removes its folder
    with pytest.raises(ValueError, match="differ"):
        store.write_chunks("beta", "k", iter([_frame(5), _frame(5).astype({"x": "float32"})]), time.perf_counter())
    assert list(store.stage_dir.iterdir()) == []


def test_parts_written_by_another_process_seal_without_reading_their_rows(tmp_path, monkeypatch):
    """The worker side: write_part in a separate process; the sealing process reads no rows."""
    store = CheckpointStore(tmp_path, STAGES, parted=["beta"])
    folder = store.begin("beta")
    code = ("import sys, pickle, numpy as np, pandas as pd; from tasks.campaign.checkpoint_parts import write_part\n"
            "i = int(sys.argv[2]); df = pd.DataFrame({'client_id': np.arange(i * 100, i * 100 + 100, dtype='int64'),"
            " 'x': np.arange(100) * 0.5})\n"
            "sys.stdout.buffer.write(pickle.dumps(write_part(df, sys.argv[1], i)))")
    import pickle

    parts = tuple(pickle.loads(subprocess.run([sys.executable, "-c", code, str(folder), str(i)], check=True,
                                              capture_output=True).stdout) for i in range(2))
    import pyarrow.parquet as pq

    def no_rows(*a, **k):
        raise AssertionError("the sealing process read a part's rows")

    for name in ("read_table", "ParquetFile"):
        monkeypatch.setattr(pq, name, no_rows)
    monkeypatch.setattr(pd, "read_parquet", no_rows)
    rec = store.seal("beta", "k", StagedParts(folder, parts), time.perf_counter())
    monkeypatch.undo()
    whole = pd.DataFrame({"client_id": np.arange(200, dtype="int64"), "x": np.tile(np.arange(100) * 0.5, 2)})
    assert rec.fingerprint == frame_fingerprint(whole) and store.verify("beta") is None
    pd.testing.assert_frame_equal(store.read("beta"), whole)
