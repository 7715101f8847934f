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

from tasks.campaign.checkpoints import CheckpointStore, stage_key
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

    store = CheckpointStore(tmp_path, STAGES)
    real_hash = checkpoints.file_hash

    def no_reread(path, *a, **k):
        raise AssertionError("a checkpoint being written is read back to hash it")

    monkeypatch.setattr(checkpoints, "file_hash", no_reread)
    store.write("alpha", "k", _frame(5000), seconds=0.1)
    store.write_chunks("beta", "k", iter([_frame(3000), _frame(2000)]), started=time.perf_counter())
    monkeypatch.setattr(checkpoints, "file_hash", real_hash)
    for stage in STAGES:  # the recorded hash is the file's, its digits counted as zeros
        assert store.verify(stage) is None and store.valid(stage, "k") is not None
