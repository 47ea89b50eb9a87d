"""The output folder (dist/): what it holds, and the one way to replace it.

A build stages the new tree beside OUT and swaps it in with one atomic rename: files whose
bytes are unchanged are hard-linked from OUT (their mtime stays), new ones from the cache.
The tree it replaced is kept as `.OUT.spare` (hard links: next to no space), and the next
build stages in it, touching only the files that changed since. Any error before the swap
leaves OUT as it was; a killed build leaves the old tree or the new one, and the next build
finishes what it left.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .cache import BuildRecord, Cache, ObjectStore, Output, Written, sha256
from .files import FILE_MODE
from .locks import locked
from .pool import Pending, Pool
from .trees import (
    Tree,
    exchange_folders,
    folders_of,
    list_tree,
    recover,
    spare_path,
    staging_path,
    swap_in,
    take_spare,
    update_tree,
)


def _vouches(st: os.stat_result, size: int, mtime: int, ctime: int, inode: int) -> bool:
    """The file is as the last build left it (so its recorded hash still holds): an edit, a
    link or a chmod changes its ctime, which nobody can set back."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) == (size, mtime, ctime, inode)


def changed_since(task: tuple[str, str]) -> tuple[set[str], Tree]:
    """(In a worker.) The files of OUT's last build that are no longer as it left them (edited,
    replaced, chmod-ed or gone), and what OUT holds (list_tree). The worker reads the build
    record itself: the build's process loads it only after the workers started without it."""
    cache_root, root = task
    record = Cache(Path(cache_root)).load_record(Path(root))
    changed = {path for path, *stat in record.stats() if not _matches(f"{root}/{path}", *stat)}
    return changed, list_tree(root)


def _matches(path: str, size: int, mtime: int, ctime: int, inode: int) -> bool:
    """The file at path is as the last build left it (False when it is gone)."""
    try:
        return _vouches(os.stat(path), size, mtime, ctime, inode)
    except OSError:
        return False


@dataclass
class Changes:
    """What publishing changed in OUT."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    bytes_written: int = 0


class Dist:
    """OUT, locked for one build: open it with `Dist.open`."""

    def __init__(self, out: Path, exchange: Callable[[Path, Path], bool]):
        self.out = out
        self.root = os.fspath(out)
        self.exchange = exchange

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, out: Path, exchange: Callable[[Path, Path], bool] | None = None
    ) -> Iterator[Dist]:
        """OUT for one build: a second build into it waits; what a killed build left is put
        right first. `exchange`: how to swap two folders in one step (default: the system's)."""
        with locked(out.with_name(f".{out.name}.lock"), f"the output folder {out}"):
            recover(out)
            yield cls(out, exchange or exchange_folders)

    def unchanged(self, record: BuildRecord) -> bool:
        """OUT holds exactly what the record says, every file as the last build left it, and
        no folder more."""
        root = self.root
        if not all(_matches(f"{root}/{path}", *stat) for path, *stat in record.stats()):
            return False
        tree = list_tree(self.out)
        paths = record.columns[0]
        return tree.files.keys() == set(paths) and tree.dirs == folders_of(paths)

    @contextlib.contextmanager
    def staging(self, cache: Cache, pool: Pool) -> Iterator[Staging]:
        """The tree the new one is staged in: the spare tree of the last build, taken under this
        build's own name at once (and given back if the build does not swap it in)."""
        staging = Staging(self, cache, pool)
        try:
            yield staging
        finally:
            staging.give_back()


class Staging:
    """What OUT holds against what the last build left there, and the tree to stage in.

    With workers, while the build loads the archive, one task stats every recorded file and
    lists OUT and another lists the staging tree, each on a free worker; without, each file
    is stat-ed and the trees listed here when asked.
    """

    def __init__(self, dist: Dist, cache: Cache, pool: Pool):
        self.dist = dist
        self._looking: Pending[tuple[set[str], Tree]] | None = None
        if pool.count > 1 and cache.load_fingerprint(dist.out):
            self._looking = pool.submit(changed_since, (os.fspath(cache.root), dist.root))
        self.last_files = cache.load_record(dist.out).files  # once the workers started without it
        self.vouched: set[str] = set()  # files present() found as the last build left them
        self.tree = take_spare(dist.out)
        self._listing: Pending[Tree] | None = None
        if self.tree is not None and pool.count > 1:
            self._listing = pool.submit(list_tree, self.tree)
        pool.flush()
        self.swapped = False

    @functools.cached_property
    def _looked(self) -> tuple[set[str], Tree] | None:
        return self._looking.result() if self._looking is not None else None

    def present(self, output: Output) -> bool:
        """OUT holds this output as the last build left it."""
        known = self.last_files.get(output.path)
        if known is None or known.sha != output.sha:
            return False
        looked = self._looked
        if looked is None:
            if not _matches(f"{self.dist.root}/{output.path}", *known[1:]):
                return False
        elif output.path in looked[0]:
            return False
        self.vouched.add(output.path)
        return True

    def _in_out(self) -> Tree:
        looked = self._looked
        return looked[1] if looked is not None else list_tree(self.dist.out)

    def _in_tree(self) -> Tree:
        assert self.tree is not None
        return self._listing.result() if self._listing is not None else list_tree(self.tree)

    def publish(
        self, outputs: dict[str, Output], objects: ObjectStore
    ) -> tuple[dict[str, Written], Changes]:
        """Make OUT hold exactly `outputs`: how each file was left (for the next build), and
        what changed. A file whose bytes are unchanged keeps its inode and mtime; when nothing
        changed at all, OUT is not touched. Every object placed was written by this build or
        verified when planned."""
        out, root = self.dist.out, self.dist.root
        existing = self._in_out()
        unchanged = self._unchanged(existing.files, outputs)
        changes = Changes(
            written=sorted(p for p in outputs if p not in unchanged),
            unchanged=len(unchanged),
            removed=sorted(existing.files.keys() - outputs.keys()),
        )
        changes.bytes_written = sum(outputs[p].size for p in changes.written)
        same_folders = existing.dirs == folders_of(outputs)
        if not changes.written and not changes.removed and same_folders and out.is_dir():
            return unchanged, changes
        files: dict[str, Written] | None = None
        if self.tree is not None:
            try:
                files = update_tree(self.tree, root, outputs, unchanged, objects, self._in_tree())
            except OSError:
                shutil.rmtree(self.tree, ignore_errors=True)  # built afresh below
        tree = self.tree or staging_path(out)
        if files is None:
            if tree.exists():
                shutil.rmtree(tree)
            tree.mkdir(parents=True)
            self.tree = tree
            try:
                files = update_tree(tree, root, outputs, unchanged, objects, Tree({}, set()))
            except BaseException:
                shutil.rmtree(tree, ignore_errors=True)
                raise
        replaced = swap_in(tree, out, self.dist.exchange)
        self.swapped = True
        if replaced is not None:  # the next build stages in it (a first build has none)
            replaced.rename(spare_path(out))
        return files, changes

    def _unchanged(
        self, existing: dict[str, int], outputs: dict[str, Output]
    ) -> dict[str, Written]:
        """The outputs OUT holds already, as the file they are there: same bytes, and the
        permissions a build gives."""
        root = self.dist.root
        unchanged: dict[str, Written] = {}
        for path, output in outputs.items():
            if path not in existing:
                continue
            known = self.last_files.get(path)
            if known is not None and known.sha == output.sha and path in self.vouched:
                unchanged[path] = known  # as the last build left it: present() checked its stat
                continue
            target = f"{root}/{path}"
            st = os.stat(target)
            if stat.S_IMODE(st.st_mode) != FILE_MODE:
                continue  # chmod-ed: written anew
            if known is not None and _vouches(st, *known[1:]):
                same = known.sha == output.sha
            else:
                same = _file_sha(target) == output.sha
            if same:
                unchanged[path] = Written.at(target, output.sha)
        return unchanged

    def give_back(self) -> None:
        """Make the staging tree the spare one again, unless the build swapped it in."""
        if self.swapped or self.tree is None or not self.tree.is_dir():
            return
        spare = spare_path(self.dist.out)
        if spare.exists():
            shutil.rmtree(self.tree, ignore_errors=True)
        else:
            self.tree.rename(spare)


def _file_sha(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            return sha256(file.read())
    except OSError:
        return None
