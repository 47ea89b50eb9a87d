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
import ctypes
import functools
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .cache import BuildRecord, Cache, ObjectStore, Output, Written, sha256
from .errors import FeedsError
from .locks import locked
from .pool import Pending, Pool


def _vouches(st: os.stat_result, size: int, mtime_ns: int, inode: int) -> bool:
    """The file is as the last build left it (so its recorded hash still holds)."""
    return (st.st_size, st.st_mtime_ns, st.st_ino) == (size, mtime_ns, inode)


def _stat_matches(path: str, written: Written) -> bool:
    """The file at path is as the last build left it (False when it is gone)."""
    try:
        return _vouches(os.stat(path), written.size, written.mtime_ns, written.inode)
    except OSError:
        return False


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


def changed_since(task: tuple[str, str]) -> tuple[set[str], dict[str, int]]:
    """(In a worker.) The files of OUT's last build that are no longer as it left them (edited,
    replaced or gone), and every file in OUT (list_files). The worker reads the build record
    itself: the build's process loads it only after the workers have started without it."""
    cache_root, root = task
    record = Cache(Path(cache_root)).load_record(Path(root))
    changed = {
        path
        for path, size, mtime, inode in record.stats()
        if not _matches(f"{root}/{path}", size, mtime, inode)
    }
    return changed, list_files(root)


def _matches(path: str, size: int, mtime_ns: int, inode: int) -> bool:
    try:
        return _vouches(os.stat(path), size, mtime_ns, inode)
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
        self.tidying: threading.Thread | None = None

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, out: Path, exchange: Callable[[Path, Path], bool] | None = None
    ) -> Iterator[Dist]:
        """OUT for one build: a second build into it waits; what a killed build left is put
        right first. `exchange`: how to swap two folders in one step (default: the system's)."""
        with locked(out.with_name(f".{out.name}.lock"), f"the output folder {out}"):
            _recover(out)
            dist = cls(out, exchange or exchange_folders)
            try:
                yield dist
            finally:
                if dist.tidying is not None:
                    dist.tidying.join()

    def unchanged(self, record: BuildRecord) -> bool:
        """OUT holds exactly what the record says, every file as the last build left it."""
        root = self.root
        return all(_matches(f"{root}/{p}", s, m, i) for p, s, m, i in record.stats()) and (
            list_files(self.out).keys() == set(record.columns[0])
        )

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
        self._looking: Pending[tuple[set[str], dict[str, int]]] | None = None
        if pool.count > 1 and cache.load_fingerprint(dist.out):
            self._looking = pool.submit(changed_since, (os.fspath(cache.root), dist.root))
        self.last_files = cache.load_record(dist.out).files  # once the workers started without it
        self.vouched: set[str] = set()  # files present() found as the last build left them
        self.tree = _take_spare(dist.out)
        self._listing: Pending[dict[str, int]] | None = None
        if self.tree is not None and pool.count > 1:
            self._listing = pool.submit(list_files, self.tree)
        pool.flush()
        self.swapped = False

    @functools.cached_property
    def _looked(self) -> tuple[set[str], dict[str, int]] | None:
        return self._looking.result() if self._looking is not None else None

    def present(self, output: Output) -> bool:
        """OUT holds this output as the last build left it."""
        known = self.last_files.get(output.path)
        if known is None or known.sha != output.sha:
            return False
        looked = self._looked
        if looked is None:
            if not _stat_matches(f"{self.dist.root}/{output.path}", known):
                return False
        elif output.path in looked[0]:
            return False
        self.vouched.add(output.path)
        return True

    def _in_out(self) -> dict[str, int]:
        looked = self._looked
        return looked[1] if looked is not None else list_files(self.dist.out)

    def _in_tree(self) -> dict[str, int]:
        assert self.tree is not None
        return self._listing.result() if self._listing is not None else list_files(self.tree)

    def publish(
        self, outputs: dict[str, Output], objects: ObjectStore
    ) -> tuple[dict[str, Written], Changes]:
        """Make OUT hold exactly `outputs`: how each file was left (for the next build), and
        what changed. A file whose bytes are unchanged keeps its inode and mtime; when nothing
        changed at all, OUT is not touched. Every object placed was written by this build or
        verified when planned."""
        out, root = self.dist.out, self.dist.root
        existing = self._in_out()
        unchanged = self._unchanged(existing, outputs)
        changes = Changes(
            written=sorted(p for p in outputs if p not in unchanged),
            unchanged=len(unchanged),
            removed=sorted(existing.keys() - outputs.keys()),
        )
        changes.bytes_written = sum(outputs[p].size for p in changes.written)
        if not changes.written and not changes.removed and out.is_dir():
            return unchanged, changes
        files: dict[str, Written] | None = None
        if self.tree is not None:
            try:
                files = _update_tree(self.tree, root, outputs, unchanged, objects, self._in_tree())
            except OSError:
                shutil.rmtree(self.tree, ignore_errors=True)  # built afresh below
        if files is None:
            tree = self.tree or _staging_path(out)
            if tree.exists():
                shutil.rmtree(tree)
            tree.mkdir(parents=True)
            self.tree = tree
            try:
                files = _update_tree(tree, root, outputs, unchanged, objects, {})  # all anew
            except BaseException:
                shutil.rmtree(tree, ignore_errors=True)
                raise
        replaced = _swap_in(self.tree, out, self.dist.exchange)
        self.swapped = True
        spare = _spare_path(out)
        if replaced is not None:
            replaced.rename(spare)  # the next build stages in it
        else:  # a first build has no replaced tree to keep: make the spare one meanwhile
            self.dist.tidying = threading.Thread(target=_link_spare, args=(out, spare))
            self.dist.tidying.start()
        return files, changes

    def _unchanged(
        self, existing: dict[str, int], outputs: dict[str, Output]
    ) -> dict[str, Written]:
        root = self.dist.root
        unchanged: dict[str, Written] = {}
        for path, output in outputs.items():
            if path not in existing:
                continue
            known = self.last_files.get(path)
            if known is not None and known.sha == output.sha and path in self.vouched:
                unchanged[path] = known  # as the last build left it: present() checked its stat
                continue
            st = os.stat(f"{root}/{path}")
            if known is not None and _vouches(st, known.size, known.mtime_ns, known.inode):
                same = known.sha == output.sha
            else:
                same = _file_sha(f"{root}/{path}") == output.sha
            if same:
                unchanged[path] = Written(output.sha, output.size, st.st_mtime_ns, st.st_ino)
        return unchanged

    def give_back(self) -> None:
        """Make the staging tree the spare one again, unless the build swapped it in."""
        if self.swapped or self.tree is None or not self.tree.is_dir():
            return
        spare = _spare_path(self.dist.out)
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


def _spare_path(out: Path) -> Path:
    """Where the tree OUT replaced is kept: the next build turns it into its staging tree, so it
    changes only the files that changed instead of linking every file anew."""
    return out.with_name(f".{out.name}.spare")


def _staging_path(out: Path) -> Path:
    """This build's staging tree: named for this process alone."""
    return out.with_name(f".{out.name}.staging-{os.getpid()}")


def _take_spare(out: Path) -> Path | None:
    """Rename the spare tree to this build's staging tree; None when there is none to take."""
    spare, staging = _spare_path(out), _staging_path(out)
    if not (spare.is_dir() and out.is_dir()):
        return None
    if staging.exists():
        shutil.rmtree(staging)
    try:
        spare.rename(staging)
    except OSError:
        return None
    return staging


def _update_tree(
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
            files[path] = _place(objects, outputs[path], target)
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


def _link_spare(out: Path, spare: Path) -> None:
    """Hard-link OUT's files into a spare tree; a failure only leaves the next build slower."""
    partial = spare.with_name(f"{spare.name}-{os.getpid()}")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(out, partial, copy_function=os.link)
        shutil.rmtree(spare, ignore_errors=True)
        partial.rename(spare)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)


def _place(objects: ObjectStore, output: Output, target: str) -> Written:
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


def _recover(out: Path) -> None:
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


def _swap_in(staging: Path, out: Path, exchange: Callable[[Path, Path], bool]) -> Path | None:
    """Put the staged tree at OUT; returns where the replaced tree now is (None if there was
    none). Without an atomic exchange, two renames: a kill between them leaves OUT moved
    aside as `.OUT.old-PID`, which the next build puts back first (_recover)."""
    if not out.exists():
        staging.rename(out)
        return None
    if exchange(staging, out):
        return staging
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    out.rename(old)
    staging.rename(out)
    return old
