"""Stop the temporary Prefect server of a command-line run that was killed.

Without ``PREFECT_API_URL`` a flow run starts Prefect's temporary server as a child process
and stops it on exit, even on Ctrl-C. A run killed with SIGKILL (or by the OOM killer) cannot
do that, and the server lived on, holding a port and a few hundred MB. ``start()`` marks the
run with a random token in its environment (``UPLIFT_RUN_TOKEN``), which every process the
run starts inherits, and launches a small detached watcher. Once the run is gone the watcher
ends every process that carries the token and looks like a Prefect server, whoever its parent
is by then (SIGTERM, then SIGKILL after a grace period), looks again a moment later for a
server that was still starting, and exits. Finding the server by its token rather than by
watching the run's children leaves no window: a server started a millisecond before the run
was killed is found as surely as one that ran for an hour. Process identity is (pid, start
time), so a recycled pid is never signalled.

Linux only (it reads /proc); elsewhere ``start()`` does nothing.

    python -m flows._reaper <pid> [--token TOKEN] [--match TEXT] [--poll SECONDS] [--grace SECONDS]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

SERVER_MARK = "prefect.server.api.server:create_app"
"""Text in the command line of Prefect's temporary server (its uvicorn app factory)."""

TOKEN_ENV = "UPLIFT_RUN_TOKEN"
"""The environment variable that marks the processes a command-line run started."""

_watcher: tuple[int, subprocess.Popen] | None = None

_PROC = Path("/proc")


def _stat(pid: int) -> list[str] | None:
    """Fields 3 onwards of /proc/<pid>/stat (state, parent, ...), None when it does not exist."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) may hold spaces or parentheses: split after its last ')'
    return stat[stat.rfind(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot; None when it does not exist or has
    exited (a zombie waiting for its parent to collect it counts as gone)."""
    fields = _stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of the whole line


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[1])


def _cmdline(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def _environ_has(pid: int, entry: bytes) -> bool:
    try:
        return entry in (_PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def marked_processes(token: str, match: str) -> set[tuple[int, int]]:
    """(pid, start time) of the live processes whose environment carries ``token`` and whose
    command line contains ``match``, whatever their parent."""
    found = set()
    me = os.getpid()
    entry = f"{TOKEN_ENV}={token}".encode()
    for proc in _PROC.iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        pid = int(proc.name)
        if match in _cmdline(pid) and _environ_has(pid, entry):
            started = start_time(pid)
            if started is not None:
                found.add((pid, started))
    return found


def matching_children(pid: int, match: str) -> set[tuple[int, int]]:
    """(pid, start time) of the live children of ``pid`` whose command line contains ``match``."""
    found = set()
    me = os.getpid()  # the watcher is itself a child of the run it watches
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        child = int(entry.name)
        if child == me or _parent(child) != pid or match not in _cmdline(child):
            continue
        started = start_time(child)
        if started is not None:
            found.add((child, started))
    return found


def _alive(proc: tuple[int, int]) -> bool:
    return start_time(proc[0]) == proc[1]


def end_processes(procs: set[tuple[int, int]], grace: float) -> None:
    """SIGTERM each process still alive as itself; SIGKILL those left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
        live = {p for p in procs if _alive(p)}
        for pid, _ in live:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while live and time.monotonic() < deadline:
            time.sleep(0.1)
            live = {p for p in live if _alive(p)}
        if not live:
            return


def watch(pid: int, match: str = SERVER_MARK, poll: float = 0.5, grace: float = 5.0,
          token: str | None = None, settle: float = 1.0) -> set[tuple[int, int]]:
    """Wait for ``pid`` to end, then end the processes it left behind that match ``match``.

    With ``token`` those are the processes carrying it in their environment (any parent);
    without, the children of ``pid`` noted while it lived. After ending them, looks once more
    ``settle`` seconds later for one that was still starting. Returns the processes ended or
    found already gone.
    """
    me = (pid, start_time(pid))
    if me[1] is None:
        return set()
    seen: set[tuple[int, int]] = set()
    while _alive(me):
        if token is None:
            seen |= matching_children(pid, match)
        time.sleep(poll)
    if token is None:
        end_processes(seen, grace)
        return seen
    for wait in (0.0, settle):
        time.sleep(wait)
        found = marked_processes(token, match)
        end_processes(found, grace)
        seen |= found
    return seen


def start(match: str = SERVER_MARK) -> subprocess.Popen | None:
    """Launch the watcher for this process when a run may start Prefect's temporary server.

    Does nothing off Linux, when ``PREFECT_API_URL`` points at a server, when
    ``UPLIFT_NO_REAPER`` is set, or when this process has a watcher already. Sets a fresh
    ``UPLIFT_RUN_TOKEN`` in this process's environment (a token inherited from a parent run
    is replaced, so this run's watcher never ends the parent's server), and every process
    started from here on carries it. The watcher runs in
    its own session with no inherited standard streams, so it neither holds a caller's pipes
    open nor dies with its group.
    """
    if not _PROC.is_dir() or os.environ.get("UPLIFT_NO_REAPER"):
        return None
    from prefect.settings import Settings

    if os.environ.get("PREFECT_API_URL") or Settings().api.url:  # read afresh: env and profile
        return None
    global _watcher
    if _watcher is not None and _watcher[0] == os.getpid():
        return _watcher[1]
    token = os.environ[TOKEN_ENV] = f"{os.getpid()}-{uuid.uuid4().hex}"
    extra = [] if match == SERVER_MARK else ["--match", match]
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows._reaper", str(os.getpid()), "--token", token, *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )
    _watcher = (os.getpid(), proc)
    return proc


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m flows._reaper", description=__doc__.splitlines()[0])
    ap.add_argument("pid", type=int)
    ap.add_argument("--match", default=SERVER_MARK)
    ap.add_argument("--poll", type=float, default=0.5)
    ap.add_argument("--grace", type=float, default=5.0)
    ap.add_argument("--token", default=None)
    args = ap.parse_args(argv)
    watch(args.pid, args.match, args.poll, args.grace, token=args.token)


if __name__ == "__main__":
    main()
