"""The watcher that stops Prefect's temporary server of a killed command-line run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flows import _reaper

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="the watcher reads /proc (Linux)")

# A parent that starts two sleeping children, one marked like Prefect's server, prints their
# pids and waits.
PARENT = textwrap.dedent("""
    import subprocess, sys, time
    sleep = [sys.executable, "-c", "import time; time.sleep(120)"]
    marked = subprocess.Popen(sleep + ["MARK-{tag}"])
    plain = subprocess.Popen(sleep + ["other"])
    print(marked.pid, plain.pid, flush=True)
    time.sleep(120)
""")


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _reaper.start_time(pid) is None:
            return True
        time.sleep(0.1)
    return False


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_watcher_ends_the_marked_child_of_a_killed_parent_and_nothing_else(tmp_path):
    tag = f"{os.getpid()}-{time.time_ns()}"
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(tag=tag)], stdout=subprocess.PIPE, text=True)
    marked, plain = (int(x) for x in parent.stdout.readline().split())
    watcher = subprocess.Popen([sys.executable, "-m", "flows._reaper", str(parent.pid), "--match", f"MARK-{tag}",
                                "--poll", "0.1", "--grace", "2"], cwd=ROOT, start_new_session=True)
    try:
        time.sleep(1.0)  # let the watcher see the children
        assert _reaper.matching_children(parent.pid, f"MARK-{tag}") == {(marked, _reaper.start_time(marked))}
        parent.kill()
        parent.wait()
        assert watcher.wait(timeout=15) == 0
        assert _gone(marked, 5), "the marked child outlived its killed parent"
        assert not _gone(plain, 0.5), "an unmarked child was ended"
    finally:
        for pid in (marked, plain, parent.pid):
            _kill(pid)
        watcher.kill()


def test_watcher_leaves_children_of_a_parent_that_ended_them_itself():
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    seen = _reaper.watch(parent.pid, match="nothing-matches-this", poll=0.1, grace=0.5)
    assert seen == set() and parent.wait(timeout=5) == 0
    # a pid that does not exist: nothing to watch, returns at once
    assert _reaper.watch(2 ** 22 + 12345, poll=0.1) == set()


def test_start_is_off_when_a_server_is_configured(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert _reaper.start() is None
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv("UPLIFT_NO_REAPER", "1")
    assert _reaper.start() is None


def test_killed_cli_run_leaves_no_temporary_server(tmp_path):
    """A real flow run with the temporary server, killed with SIGKILL mid-run: its server goes too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.pop("UPLIFT_NO_REAPER", None)
    cmd = [sys.executable, "-m", "flows.generate", "data.n_clients=200000", "data.name=reaper_world",
           f"paths.artifacts={tmp_path / 'artifacts'}"]
    cli = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    server: set = set()
    try:
        deadline = time.monotonic() + 120
        while not server and time.monotonic() < deadline and cli.poll() is None:
            server = _reaper.matching_children(cli.pid, _reaper.SERVER_MARK)
            time.sleep(0.2)
        assert server, "the run never started Prefect's temporary server"
        time.sleep(1.0)  # the watcher polls every 0.5 s
        cli.send_signal(signal.SIGKILL)  # the run only, not its group: nothing else cleans up
        cli.wait()
        (pid, _), = server
        assert _gone(pid, 20), "Prefect's temporary server outlived the killed run"
    finally:
        for pid, _ in server:
            _kill(pid)
        try:
            os.killpg(cli.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _marked_by(var: str, value: str) -> list[int]:
    """Live processes whose environment carries ``var=value``."""
    entry = f"{var}={value}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if entry in (proc / "environ").read_bytes().split(b"\0") and _reaper.start_time(int(proc.name)):
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.2, 0.25, 0.5])
def test_run_killed_while_its_server_starts_leaves_no_server(tmp_path, delay):
    """SIGKILL to the run alone, right after it announces the temporary server: the server that
    was still starting is ended all the same (the watcher finds it by the run's token)."""
    mark = f"{os.getpid()}-{time.time_ns()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.pop("UPLIFT_NO_REAPER", None)
    env["UPLIFT_TEST_MARK"] = mark
    log = tmp_path / "out.log"
    cmd = [sys.executable, "-m", "flows.generate", "data.n_clients=2000", "data.name=w",
           f"paths.artifacts={tmp_path / 'artifacts'}"]
    with open(log, "w") as out:
        cli = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Starting temporary server" not in log.read_text() and time.monotonic() < deadline:
            assert cli.poll() is None, log.read_text()[-2000:]
            time.sleep(0.01)
        time.sleep(delay)
        cli.send_signal(signal.SIGKILL)
        cli.wait()
        deadline = time.monotonic() + 30
        left = _marked_by("UPLIFT_TEST_MARK", mark)
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = _marked_by("UPLIFT_TEST_MARK", mark)
        assert left == [], f"processes of the killed run still alive: {left}"
    finally:
        for pid in _marked_by("UPLIFT_TEST_MARK", mark):
            _kill(pid)
