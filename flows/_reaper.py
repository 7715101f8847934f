"""Stop the temporary Prefect server of a command-line run that was killed.

Without ``PREFECT_API_URL`` a flow run starts Prefect's temporary server as a child process
and stops it on exit, even on Ctrl-C. A run killed with SIGKILL (or by the OOM killer) cannot
do that, and the server lived on, holding a port and a few hundred MB. ``start()`` launches a
small detached watcher: while the run lives it notes the run's children that are a Prefect
server; once the run is gone it ends them (SIGTERM, then SIGKILL after a grace period) and
exits. Process identity is (pid, start time), so a recycled pid is never signalled.

Linux only (it reads /proc); elsewhere ``start()`` does nothing.

    python -m flows._reaper <pid> [--match TEXT] [--poll SECONDS] [--grace SECONDS]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SERVER_MARK = "prefect.server.api.server:create_app"
"""Text in the command line of Prefect's temporary server (its uvicorn app factory)."""

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


def watch(pid: int, match: str = SERVER_MARK, poll: float = 0.5, grace: float = 5.0) -> set[tuple[int, int]]:
    """Note ``pid``'s children matching ``match`` while it lives; end them once it is gone.

    Returns the processes it ended or found already gone.
    """
    me = (pid, start_time(pid))
    if me[1] is None:
        return set()
    seen: set[tuple[int, int]] = set()
    while _alive(me):
        seen |= matching_children(pid, match)
        time.sleep(poll)
    end_processes(seen, grace)
    return seen


def start(match: str = SERVER_MARK) -> subprocess.Popen | None:
    """Launch the watcher for this process when a run may start Prefect's temporary server.

    Does nothing off Linux, when ``PREFECT_API_URL`` points at a server, or when
    ``UPLIFT_NO_REAPER`` is set. The watcher runs in its own session with no inherited
    standard streams, so it neither holds a caller's pipes open nor dies with its group.
    """
    if not _PROC.is_dir() or os.environ.get("UPLIFT_NO_REAPER"):
        return None
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return None
    extra = [] if match == SERVER_MARK else ["--match", match]
    return subprocess.Popen(
        [sys.executable, "-m", "flows._reaper", str(os.getpid()), *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m flows._reaper", description=__doc__.splitlines()[0])
    ap.add_argument("pid", type=int)
    ap.add_argument("--match", default=SERVER_MARK)
    ap.add_argument("--poll", type=float, default=0.5)
    ap.add_argument("--grace", type=float, default=5.0)
    args = ap.parse_args(argv)
    watch(args.pid, args.match, args.poll, args.grace)


if __name__ == "__main__":
    main()
