"""Locks between processes on a file: held while a process runs, gone when it dies."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import FeedsError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class Busy(FeedsError):
    """Another process holds the lock."""


def _try_lock(handle: IO[bytes], wait: bool) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True
    mode = msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK  # pragma: no cover (Windows)
    try:  # pragma: no cover
        msvcrt.locking(handle.fileno(), mode, 1)
    except OSError:  # pragma: no cover
        return False
    return True  # pragma: no cover


def holder(path: Path) -> str:
    """What the lock file says of the process that took it last ("" when unknown)."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


@contextmanager
def locked(path: Path, what: str, owner: str = "", wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `path` (made if missing). The system drops it when the process
    ends, however it ends, so a killed process never leaves it stuck.

    `owner` says what holds it (written in the lock file, for whoever finds it busy);
    wait=False: raise Busy at once, naming the process that holds it, instead of waiting.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise FeedsError(f"cannot lock {what}: {exc.strerror}", str(path)) from None
    try:
        if not _try_lock(handle, wait=False):
            if not wait:
                who = holder(path)
                raise Busy(f"{what} is in use by another process" + (f" ({who})" if who else ""))
            _try_lock(handle, wait=True)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}{': ' + owner if owner else ''}\n".encode())
        handle.flush()
        yield
    finally:
        handle.close()
