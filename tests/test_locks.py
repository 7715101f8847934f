"""The process lock under contention: never two holders, a dead holder's lock taken over."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.core.errors import StateError
from tasks.core.locks import PidLock

ROUNDS = 200
CONTENDERS = 4


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _contend(path: str, start: mp.Barrier, tried: mp.Barrier, done: mp.Barrier, wins: mp.Queue) -> None:
    for rnd in range(ROUNDS):
        start.wait()
        lock = PidLock(path)
        try:
            lock.acquire()
        except StateError:
            pass
        tried.wait()  # every contender has tried before any holder lets go
        if lock.held:
            try:
                named = json.loads(Path(path).read_text())["pid"]
            except (OSError, ValueError, KeyError):
                named = None
            wins.put((rnd, os.getpid(), named))
            lock.release()
        done.wait()


def test_stale_lock_race_never_has_two_holders(tmp_path: Path):
    path = tmp_path / ".lock"
    # spawn, not fork: a fork of a test process that runs other threads (Prefect's) can hang
    ctx = mp.get_context("spawn")
    start, tried, done = (ctx.Barrier(CONTENDERS + 1) for _ in range(3))
    wins: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(path), start, tried, done, wins)) for _ in range(CONTENDERS)]
    for p in procs:
        p.start()
    stale = _dead_pid()
    try:
        for _ in range(ROUNDS):
            # a lock file left by a run that died
            path.write_text(json.dumps({"pid": stale, "host": os.uname().nodename, "since": time.time()}))
            start.wait(timeout=60)
            tried.wait(timeout=60)
            done.wait(timeout=60)
    finally:
        for p in procs:
            p.join(timeout=60)
    results = [wins.get(timeout=5) for _ in range(wins.qsize())] if hasattr(wins, "qsize") else []
    per_round: dict[int, list[int]] = {}
    for rnd, pid, named in results:
        per_round.setdefault(rnd, []).append(pid)
    two = {r: v for r, v in per_round.items() if len(v) > 1}
    assert two == {}, f"{len(two)} of {ROUNDS} rounds had two holders"
    assert all(named == pid for _, pid, named in results), "the lock file names another process than the holder"
    assert len(per_round) == ROUNDS, f"only {len(per_round)} of {ROUNDS} rounds had a holder"
    assert all(p.exitcode == 0 for p in procs)


def test_lock_of_a_killed_holder_is_free_at_once(tmp_path: Path):
    path = tmp_path / ".lock"
    code = f"from tasks.core.locks import PidLock; l=PidLock({str(path)!r}); l.acquire(); print('held', flush=True); import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(StateError, match=f"locked by process {proc.pid}"):
            PidLock(path).acquire()
    finally:
        proc.kill()
        proc.wait()
    with PidLock(path) as lock:
        assert lock.held and json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_same_process_second_lock_object_is_refused(tmp_path: Path):
    path = tmp_path / ".lock"
    with PidLock(path):
        with pytest.raises(StateError):
            PidLock(path).acquire()
