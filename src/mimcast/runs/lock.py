"""An exclusive lock on a run folder: one process trains, resumes or overwrites it at a time.

The lock is an operating-system lock (flock) on `.mimcast.lock` inside the run folder, so it is
released by the kernel when its process ends, however it ends: a lock left by a killed process
is stale and the next run takes it over. The file holds the owner's PID, host, command and
start time, which a refused second process names. (On NFS, flock is carried by the server's
lock manager, so processes on several nodes exclude each other too.)
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from mimcast.errors import BusyError, StorageError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def _try_lock(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt  # pragma: no cover - Windows

    try:  # pragma: no cover
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # pragma: no cover
        return False
    return True  # pragma: no cover


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """`with RunLock(path, "train"):` holds the lock; BusyError when another process has it."""

    def __init__(self, path: Path, command: str) -> None:
        self.path, self.command = Path(path), command
        self._fd: int | None = None
        self.took_over: dict | None = None  # the stale owner whose lock was taken over

    def _owner(self) -> dict:
        try:
            owner = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return owner if isinstance(owner, dict) else {}

    def __enter__(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError(f"cannot create the lock file {self.path}: {e.strerror}") from e
        if not _try_lock(fd):
            os.close(fd)
            o = self._owner()
            raise BusyError(
                f"{self.path.parent} is in use by another mimcast process ({o.get('command', '?')}"
                f", PID {o.get('pid', '?')} on {o.get('host', '?')}, since "
                f"{o.get('since', '?')}): wait for it to end, or stop it"
            )
        previous = self._owner()
        same_host = previous.get("host") == socket.gethostname()
        if previous.get("pid") and same_host and not _alive(int(previous["pid"])):
            self.took_over = previous
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no owner any more (the file itself stays)
            os.close(self._fd)  # closing releases the lock
            self._fd = None
