"""Files written whole or not at all, and what a killed writer leaves behind."""

from __future__ import annotations

import os
import re
from contextlib import suppress
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
"""The permissions of every file a build writes (as the umask makes them)."""


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write through a temporary file and rename, so a reader sees the old file or the new one.

    On plain strings: a first build writes some twenty thousand objects through it."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


_TEMPORARY = re.compile(r"\..+\.tmp-(\d+)")


def remove_stale_temporaries(folder: Path) -> None:
    """Remove what write_atomic left in folder when its process died before the rename."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        found = _TEMPORARY.fullmatch(entry.name)
        if found and not _alive(int(found[1])) and entry.is_file(follow_symlinks=False):
            with suppress(OSError):
                os.unlink(entry.path)


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows, os.kill would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # someone else's process, or no way to tell
        return True
    return True
