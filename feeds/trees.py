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
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from .cache import ObjectStore, Output, Written
from .errors import FeedsError


class Tree(NamedTuple):
    """What a folder holds: every file (a path relative to it, "/" between parts) with its
    inode as the folder lists it, and every folder under it."""

    files: dict[str, int]
    dirs: set[str]


def list_tree(root: str | Path) -> Tree:
    """Every file and folder under root, from folder listings alone (no stat per file)."""
    files: dict[str, int] = {}
    dirs: set[str] = set()
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
                    dirs.add(f"{prefix}{entry.name}")
                    folders.append((entry.path, f"{prefix}{entry.name}/"))
                else:
                    files[f"{prefix}{entry.name}"] = entry.inode()
    return Tree(files, dirs)


def folders_of(paths: Iterable[str]) -> set[str]:
    """Every folder the paths need, their parents included ("" aside)."""
    found: set[str] = set()
    for path in paths:
        folder = path.rpartition("/")[0]
        while folder and folder not in found:
            found.add(folder)
            folder = folder.rpartition("/")[0]
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
    present: Tree,
) -> dict[str, Written]:
    """Turn the tree at `staging` (empty, or the spare tree of an earlier build) into the new one;
    returns each file as it was left there (stat-ed after its last link, so that its ctime
    vouches for it).

    `present`: what the tree holds, listed once it had this build's own name. A file there is
    kept only when it is the very inode OUT holds with unchanged bytes (that stat vouched for
    it); every other file, and every folder the new tree does not need, is replaced or removed.
    So only what changed since that build is written, and nothing else the tree holds can leak
    into the new one.
    """
    stage = os.fspath(staging)
    needed = folders_of(outputs)
    made = present.dirs | {""}
    files = dict(unchanged)
    # A link or an unlink changes the ctime of the inode, and so of every path that shares
    # it (the same bytes: each search shard's scripts): count them, and stat those again.
    touched: Counter[int] = Counter()
    for path in sorted(outputs):
        target = f"{stage}/{path}"
        if path in present.files:
            kept = unchanged.get(path)
            if kept is not None and present.files[path] == kept.inode:
                continue
            os.unlink(target)
            touched[present.files[path]] += 1
        else:
            folder = path.rpartition("/")[0]
            if folder not in made:
                os.makedirs(f"{stage}/{folder}", exist_ok=True)
                made |= {folder, *folders_of([folder])}
        if path in unchanged:
            os.link(f"{root}/{path}", target)  # a link: OUT's file has a new ctime now
            files[path] = Written.at(target, unchanged[path].sha)
        else:
            files[path] = place(objects, outputs[path], target)
        touched[files[path].inode] += 1
    for path in present.files.keys() - outputs.keys():
        os.unlink(f"{stage}/{path}")
        touched[present.files[path]] += 1
    for folder in sorted(present.dirs - needed, key=lambda f: -f.count("/")):
        with contextlib.suppress(OSError):  # not empty: something odd was put there meanwhile
            os.rmdir(f"{stage}/{folder}")
    _restat_touched(stage, files, unchanged, touched)
    return files


def _restat_touched(
    stage: str, files: dict[str, Written], unchanged: dict[str, Written], touched: Counter[int]
) -> None:
    """Stat again each file whose inode changed after its stat was taken: a file kept from the
    spare tree whose inode was touched at all, one placed here touched more than that once."""
    for path, written in files.items():
        own = 0 if written is unchanged.get(path) else 1
        if touched[written.inode] > own:
            files[path] = Written.at(f"{stage}/{path}", written.sha)


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
    return Written.at(target, output.sha)


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
