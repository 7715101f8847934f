"""A process lock on a file: one run at a time per folder, a dead holder's lock taken over.

The lock is the kernel's: ``flock(LOCK_EX | LOCK_NB)`` on the lock file. Only one open file
holds it at a time, and the kernel drops it the moment its process ends, however it ends
(SIGKILL and out-of-memory included). Taking over a dead run's lock is therefore the same
atomic step as taking a free one: there is no window in which two processes both decide the
lock is stale. The file also names the holder (pid, host, since) for the message a refused run
prints.

The file is removed on release. A process that opened the file just before it was removed
would then hold a lock on a file nobody else can see; so after locking, the holder checks that
the path still names the file it locked, and starts over when it does not.

Local filesystems only: ``flock`` is not reliable across hosts on network filesystems.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from tasks.core.errors import StateError


class PidLock:
    """Exclusive lock of a folder (a campaign, the prediction log), held for the duration of a run.

    Usage: ``with PidLock(folder / ".lock"): ...``. Raises :class:`StateError` naming the
    holder when another live process holds the lock.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def busy(self) -> bool:
        """True when a run holds the lock now (this object included); takes nothing."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a shared lock taken here
        return False

    def _owner(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self, attempts: int = 50) -> None:
        """Take the lock or raise :class:`StateError` naming the process that holds it."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                owner = self._owner()
                raise StateError(
                    f"folder {self.path.parent} is locked by process {owner.get('pid', '?')} on "
                    f"{owner.get('host', '?')} (lock file {self.path}); wait for that run to finish"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                # The previous holder removed the file between our open and our lock.
                os.close(fd)
                time.sleep(0.001)
                continue
            body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
            os.ftruncate(fd, 0)
            os.pwrite(fd, body.encode("utf-8"), 0)
            os.fsync(fd)
            self._fd = fd
            return
        raise StateError(f"could not take the lock {self.path}; other runs keep taking it")

    def release(self) -> None:
        """Remove the lock file and drop the lock, if this object holds it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> "PidLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
