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
