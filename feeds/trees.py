"""The file-system side of publishing: staging trees, hard links, the atomic swap, recovery.

Trees are named beside OUT: `.OUT.spare` (the tree the last build replaced, staged in next),
`.OUT.staging-PID` (a build's own staging tree), `.OUT.old-PID` (OUT moved aside where no
atomic exchange exists, for one rename's time).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .cache import ObjectStore, Output, Written
from .errors import FeedsError


def list_files(root: str | Path) -> dict[str, int]:
    """Every file under root, as a path relative to it with "/" between parts, and its inode
    as the folder lists it (no stat per file)."""
    found: dict[str, int] = {}
    folders = [(os.fspath(root), "")]
    while folders:
        folder, prefix = folders.pop()
        try:
            entries = os.scandir(folder)
        except OSError:  # unreadable or gone: as os.walk, list what can be listed
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, f"{prefix}{entry.name}/"))
                else:
                    found[f"{prefix}{entry.name}"] = entry.inode()
    return found


def spare_path(out: Path) -> Path:
    """Where the tree OUT replaced is kept: the next build turns it into its staging tree, so it
    changes only the files that changed instead of linking every file anew."""
    return out.with_name(f".{out.name}.spare")


def staging_path(out: Path) -> Path:
    """This build's staging tree: named for this process alone."""
    return out.with_name(f".{out.name}.staging-{os.getpid()}")


def take_spare(out: Path) -> Path | None:
    """Rename the spare tree to this build's staging tree; None when there is none to take."""
    spare, staging = spare_path(out), staging_path(out)
    if not (spare.is_dir() and out.is_dir()):
        return None
    if staging.exists():
        shutil.rmtree(staging)
    try:
        spare.rename(staging)
    except OSError:
        return None
    return staging


def update_tree(
    staging: Path,
    root: str,
    outputs: dict[str, Output],
    unchanged: dict[str, Written],
    objects: ObjectStore,
    present: dict[str, int],
) -> dict[str, Written]:
    """Turn the tree at `staging` (empty, or the spare tree of an earlier build) into the new one.

    `present`: every file in it (list_files), listed once it had this build's own name. A
    file there is kept only when it is the very inode OUT holds with unchanged bytes (that stat
    vouched for it); every other file is replaced or removed. So only what changed since that
    build is written, and anything else the tree holds cannot leak into the new one.
    """
    stage = os.fspath(staging)
    folders = {p.rpartition("/")[0] for p in present} | {""}
    files = dict(unchanged)
    for path in sorted(outputs):
        target = f"{stage}/{path}"
        if path in present:
            kept = unchanged.get(path)
            if kept is not None and present[path] == kept.inode:
                continue
            os.unlink(target)
        else:
            folder = path.rpartition("/")[0]
            if folder not in folders:
                os.makedirs(f"{stage}/{folder}", exist_ok=True)
                folders.add(folder)
        if path in unchanged:
            os.link(f"{root}/{path}", target)
        else:
            files[path] = place(objects, outputs[path], target)
    emptied: set[str] = set()
    for path in present.keys() - outputs.keys():
        os.unlink(f"{stage}/{path}")
        folder = path.rpartition("/")[0]
        while folder and folder not in emptied:
            emptied.add(folder)
            folder = folder.rpartition("/")[0]
    for folder in sorted(emptied, key=lambda f: -f.count("/")):
        with contextlib.suppress(OSError):  # still holds files
            os.rmdir(f"{stage}/{folder}")
    return files


def link_spare(out: Path, spare: Path) -> None:
    """Hard-link OUT's files into a spare tree; a failure only leaves the next build slower."""
    partial = spare.with_name(f"{spare.name}-{os.getpid()}")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(out, partial, copy_function=os.link)
        shutil.rmtree(spare, ignore_errors=True)
        partial.rename(spare)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)


def place(objects: ObjectStore, output: Output, target: str) -> Written:
    """Put an object's bytes at target: a hard link where the file system allows, else a copy."""
    source = objects.path(output.sha)
    try:
        os.link(source, target)
    except OSError:
        data = objects.read_verified(output.sha)
        if data is None:
            raise FeedsError(f"the cache lost the bytes of {output.path}", str(source)) from None
        with open(target, "wb") as file:
            file.write(data)
    st = os.stat(target)
    return Written(output.sha, output.size, st.st_mtime_ns, st.st_ino)


def _leftovers(out: Path) -> list[Path]:
    return [
        *sorted(out.parent.glob(f".{out.name}.staging-*")),
        *sorted(out.parent.glob(f".{out.name}.spare-*")),
        *sorted(out.parent.glob(f".{out.name}.old-*")),
    ]


def recover(out: Path) -> None:
    """Finish what an interrupted build left: restore a moved-away OUT, drop stale staging trees."""
    olds = [p for p in _leftovers(out) if ".old-" in p.name]
    if not out.exists() and olds:
        olds[-1].rename(out)
    for path in _leftovers(out):
        shutil.rmtree(path, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_folders(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux renameat2); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    return bool(
        renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0
    )


def no_exchange(a: Path, b: Path) -> bool:
    """For systems without an atomic exchange (and to test that path): always False."""
    return False


def swap_in(staging: Path, out: Path, exchange: Callable[[Path, Path], bool]) -> Path | None:
    """Put the staged tree at OUT; returns where the replaced tree now is (None if there was
    none). Without an atomic exchange, two renames: a kill between them leaves OUT moved
    aside as `.OUT.old-PID`, which the next build puts back first (recover)."""
    if not out.exists():
        staging.rename(out)
        return None
    if exchange(staging, out):
        return staging
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    out.rename(old)
    staging.rename(out)
    return old
