"""A process lock on a file: one run at a time per folder, stale locks taken over.

The lock file is created with ``O_CREAT | O_EXCL`` and names the owning process and host; a
second run is refused while that process is alive, and a lock left by a dead process is taken
over.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from tasks.core.errors import StateError
from tasks.core.io import read_json


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed child not yet reaped) is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class PidLock:
    """Exclusive lock of a folder (a campaign, the prediction log), held for the duration of a run.

    Usage: ``with PidLock(folder / ".lock"): ...``. Raises :class:`StateError` when a
    live process holds the lock; a lock whose process is gone (same host) is taken over.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._held = False

    def _owner(self) -> dict:
        try:
            return read_json(self.path)
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        """Take the lock or raise :class:`StateError` naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                pid = int(owner.get("pid", 0) or 0)
                same_host = owner.get("host", socket.gethostname()) == socket.gethostname()
                if not owner:
                    # A lock file the owner has not finished writing: give it a moment.
                    time.sleep(0.2)
                    owner = self._owner()
                    pid = int(owner.get("pid", 0) or 0)
                if owner and (not same_host or _pid_alive(pid)):
                    raise StateError(
                        f"folder {self.path.parent} is locked by process {pid} on "
                        f"{owner.get('host')} (lock file {self.path}); wait for that run to finish"
                    )
                # Stale: the owner died. Remove the lock and try again.
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            self._held = True
            return
        raise StateError(f"could not take the lock {self.path}; another run keeps taking it")

    def release(self) -> None:
        """Remove the lock file if this process holds it."""
        if self._held:
            if int(self._owner().get("pid", -1)) == os.getpid():
                self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> "PidLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
