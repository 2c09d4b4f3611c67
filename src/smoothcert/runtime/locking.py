"""One writer per output: an exclusive ``fcntl.flock`` on a lock file.

The kernel releases a flock when its process dies (even by ``kill -9``), so a lock can never go
stale; a second writer is refused at once, with the process id of the holder in the message.
A lock file (and any folder) that ``acquire`` created is removed again by ``release``, so a
command that fails leaves nothing behind. The one cost: a process that opened the file just
before the holder removed it locks the removed file, and a third process starting in that
instant could lock a new one; two writers need three commands started within microseconds.
A killed process leaves its lock file, unlocked. POSIX only (``fcntl``), like the rest of the runner.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class InUseError(ValueError):
    """Another live process holds the lock (a ValueError, so every command reports it in one line)."""


class FileLock:
    """An exclusive, non-blocking lock on ``path`` for the output ``what`` (named in the error);
    use as a context manager or call ``acquire``/``release``."""

    def __init__(self, path: str | Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None
        self._created: list[Path] = []  # what acquire made: the lock file, then new folders inside out

    def acquire(self) -> FileLock:
        folders = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, created = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            fd, created = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InUseError(f"{self.what} is in use by another smoothcert process (pid {holder}); "
                             f"wait for it to finish or choose another output") from None
        self._created = [self.path, *folders] if created else []
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            for path in self._created:  # removed while still locked; folders only when left empty
                try:
                    path.rmdir() if path.is_dir() else path.unlink()
                except OSError:
                    break
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None
            self._created = []

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
