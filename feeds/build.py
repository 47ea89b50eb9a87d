"""`feeds build`: plan every output as path -> content, render what the cache lacks, swap dist/ in.

1. Fingerprint the inputs (digests, note state, settings, templates, code). If the last
   build into OUT had the same fingerprint and OUT is as it left it, there is nothing to do.
2. Parse the digests; a file whose bytes were parsed before comes from the cache.
3. Plan the jobs (a digest's page and newsletters, a tag page, a feed), each keyed by a
   hash of what it renders from. Jobs the cache holds are reused; the rest render, on
   every core when there are many.
4. Stage the new tree beside OUT: files whose bytes are unchanged are hard-linked from
   OUT (their mtime stays), new ones from the cache. Swap it in with one rename. The tree
   it replaced is kept as `.OUT.spare` (hard links: next to no space), and the next build
   stages in it, touching only the files that changed since.

Any error before the swap leaves OUT as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .cache import FORMAT, Cache, ObjectStore, Output, Written, sha256, write_atomic
from .config import Settings
from .errors import FeedsError, ParseError, Problem
from .model import Note
from .parse import Parsed, decode_digest, digest_files, parse_digest, read_archive
from .state import STATE_FILE, dump_state, note_hash, parse_state, resolve_updates
from .templating import default_templates_dir

if TYPE_CHECKING:
    from .jobs import Workers

Progress = Callable[[str, int], None]
"""Told (stage, files so far) as the build goes: for a progress display."""

_LIBRARIES = ("feedgen", "mjml-python", "jinja2", "markupsafe", "lxml")


@dataclass
class BuildReport:
    """What a build did: files written, unchanged and removed, and where the time went."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    bytes_written: int = 0
    rendered: int = 0
    reused: int = 0
    workers: int = 1
    parsed_by_workers: int = 0
    elapsed: float = 0.0


def _library_versions() -> list[str]:
    found = []
    for name in _LIBRARIES:
        try:
            found.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            found.append(f"{name}=?")
    return found


def _tree_hash(folders: Iterable[Path], pattern: str = "*") -> list[str]:
    """Name and content hash of every file under the folders, in a stable order."""
    parts = []
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.rglob(pattern)):
                if path.is_file():
                    parts.append(f"{path.relative_to(folder)}:{sha256(path.read_bytes())}")
    return parts


def code_salt(settings: Settings) -> str:
    """A hash of what every output depends on besides the archive and the templates: code,
    libraries and settings. Part of every render key (with the templates a job renders)."""
    package = Path(__file__).resolve().parent
    # Where the cache and templates are (their text is hashed per job) and how many workers
    # render change no output.
    neutral = replace(settings, cache_dir="", workers=0, templates_dir=None)
    parts = [
        f"format={FORMAT}",
        f"feeds={__version__}",
        *_library_versions(),
        *_tree_hash([package], "*.py"),
        repr(neutral),
    ]
    return sha256("\n".join(parts).encode())


def input_salt(settings: Settings, code: str) -> str:
    """code_salt and every template file: a build with the same inputs and this salt as the
    last has nothing to do."""
    templates = [default_templates_dir()]
    if settings.templates_dir:
        templates.insert(0, Path(settings.templates_dir))
    return sha256("\n".join([code, *_tree_hash(templates)]).encode())


FileStat = tuple[int, int, int, int]
"""Size, mtime, ctime and inode of a file: equal stats mean bytes unchanged, unless fresh."""

_FRESH_NS = 2_000_000_000
"""A file changed this recently may change again within the same timestamp tick (file systems
stamp in coarse steps), so its stat vouches for nothing: it is read again next time."""


@dataclass
class _Inputs:
    """Each digest file's parse-cache key, and a hash of every input but the note state."""

    files: dict[Path, str]
    state: bytes | None
    digest: Any  # hashlib object over the salt, OUT and the digest files' parse keys
    stats: dict[str, tuple[FileStat, str]]  # per digest file, the stat that vouches for its key

    def fingerprint(self, state: bytes | None) -> str:
        """Every input of a build, with the given note state (which the build itself updates)."""
        found = self.digest.copy()
        found.update(b"state\0" + (state or b""))
        return str(found.hexdigest())


def _read_inputs(
    src: Path, out: Path, salt: str, known: dict[str, tuple[FileStat, str]]
) -> _Inputs:
    """Each digest file's parse key (a hash of its name and bytes). A file whose stat is as the
    last build recorded it is not read again."""
    digest = hashlib.sha256(f"{salt}\n{out.resolve()}\n".encode())
    files: dict[Path, str] = {}
    stats: dict[str, tuple[FileStat, str]] = {}
    settled = time.time_ns() - _FRESH_NS  # not an output date: only whether to trust a stat
    for path in digest_files(src):
        name = os.path.abspath(path)
        try:
            st = os.stat(path)
            stat = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            recorded = known.get(name)
            if recorded is not None and recorded[0] == stat:
                key = recorded[1]
            else:
                key = _parse_key(path, path.read_bytes())  # stat first: a later edit shows
        except OSError:
            continue  # reported by the parse step
        files[path] = key  # not the bytes: a warm build never needs them
        if max(st.st_mtime_ns, st.st_ctime_ns) < settled:
            stats[name] = (stat, key)
        digest.update(f"{path}\0{key}\0".encode())
    state_path = src / STATE_FILE
    state = state_path.read_bytes() if state_path.exists() else None
    return _Inputs(files, state, digest, stats)


def _parse_key(path: Path, data: bytes) -> str:
    return sha256(os.fsencode(path) + b"\0" + data)


def _vouches(st: os.stat_result, written: Written) -> bool:
    """The file is as the last build left it (so its recorded hash still holds)."""
    return (st.st_size, st.st_mtime_ns, st.st_ino) == (
        written.size,
        written.mtime_ns,
        written.inode,
    )


def _stat_matches(path: str | Path, written: Written) -> bool:
    """The file at path is as the last build left it (False when it is gone)."""
    try:
        return _vouches(os.stat(path), written)
    except OSError:
        return False


def _existing_files(root: Path) -> dict[str, int]:
    """Every file under root, as a path relative to it with "/" between parts, and its inode
    as the folder lists it (no stat per file)."""
    found: dict[str, int] = {}
    if not root.is_dir():
        return found
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


def _look_in_out(task: tuple[str, str]) -> tuple[set[str], dict[str, int]]:
    """In a worker: the files of OUT's last build that are no longer as it left them (edited,
    replaced or gone), and every file in OUT (_existing_files)."""
    cache_root, root = task
    _, recorded, _ = Cache(Path(cache_root)).load_record(Path(root))
    changed = {path for path, w in recorded.items() if not _stat_matches(f"{root}/{path}", w)}
    return changed, _existing_files(Path(root))


class _InOut:
    """What OUT holds, against what the last build left there.

    With workers, while this process loads the archive, one task stats every recorded file
    and lists OUT and another lists the staging tree, each on a free worker (tens of thousands
    of stats and directory entries, otherwise on the way from loading to rendering, or from
    rendering to the swap); without, each file is stat-ed and the trees listed here when asked.

    The staging tree is the spare tree of the last build (see _spare_path), renamed at once to
    this build's own name, so what is listed is what this build will find there. `give_back`
    makes it the spare tree again when the build does not swap it in.
    """

    def __init__(self, out: Path, cache: Cache, last_files: dict[str, Written], workers: Workers):
        self.out = out
        self.root = os.fspath(out)
        self.last_files = last_files
        self.vouched: set[str] = set()  # files present() found as the last build left them
        self._looking: Iterator[tuple[set[str], dict[str, int]]] | None = None
        self._listing: Iterator[dict[str, int]] | None = None
        if workers.count > 1 and last_files:
            self._looking = workers.map(_look_in_out, [(os.fspath(cache.root), self.root)])
        self.staging = _take_spare(out)
        if self.staging is not None and workers.count > 1:
            self._listing = workers.map(_existing_files, [self.staging])

    @functools.cached_property
    def _looked(self) -> tuple[set[str], dict[str, int]] | None:
        """What the worker found (_look_in_out); None: no worker looked."""
        return next(self._looking) if self._looking is not None else None

    @functools.cached_property
    def _listed(self) -> dict[str, int]:
        """Every file in the staging tree: as a worker listed it, or listed here."""
        assert self.staging is not None
        return next(self._listing) if self._listing is not None else _existing_files(self.staging)

    def present(self, output: Output) -> bool:
        """OUT holds this output as the last build left it."""
        known = self.last_files.get(output.path)
        if known is None or known.sha != output.sha:
            return False
        looked = self._looked
        if looked is None:
            if not _stat_matches(f"{self.root}/{output.path}", known):
                return False
        elif output.path in looked[0]:
            return False
        self.vouched.add(output.path)
        return True

    def files(self) -> dict[str, int]:
        """Every file in OUT, with its inode."""
        looked = self._looked
        return looked[1] if looked is not None else _existing_files(self.out)

    def staged(self) -> tuple[Path, dict[str, int]] | None:
        """The staging tree taken from the last build, and every file in it (None: no such tree).

        Like files(), first asked before the workers close."""
        return None if self.staging is None else (self.staging, self._listed)

    def give_back(self) -> None:
        """Make the staging tree the spare one again, unless the build swapped it in."""
        if self.staging is not None and self.staging.is_dir():
            spare = _spare_path(self.out)
            if spare.exists():
                shutil.rmtree(self.staging, ignore_errors=True)
            else:
                self.staging.rename(spare)


PARALLEL_PARSE_FILES = 64
"""From this many digest files the cache lacks on, the workers parse them (as on a first build)."""


def _parse_fresh(path: Path) -> tuple[str, tuple[Parsed, tuple[str, ...]]]:
    """Parse one digest file: its parse key, and the parse with each note's hash."""
    data = path.read_bytes()  # OSError: reported by read_archive
    parsed = parse_digest(decode_digest(data, str(path)), str(path))
    return _parse_key(path, data), (parsed, tuple(note_hash(n) for n in parsed.digest.notes))


def _parse_share(paths: list[Path]) -> list[tuple[Path, Any]]:
    """In a worker: each file parsed, or None where it fails (the build then parses it again
    itself, to report the problem)."""
    found: list[tuple[Path, Any]] = []
    for path in paths:
        try:
            found.append((path, _parse_fresh(path)))
        except (OSError, ParseError):
            found.append((path, None))
    return found


class _ParseMemo:
    """Parses digest files, reusing the cached result for a file whose bytes it parsed before."""

    def __init__(self, cache: Cache, files: dict[Path, str]):
        self.files = files
        self.known = cache.load_parsed()
        self.used: dict[str, Any] = {}
        self.hashes: dict[int, tuple[Note, str]] = {}
        self.fresh: dict[Path, Any] = {}  # parsed by the workers, as they come in
        self.coming: Iterator[list[tuple[Path, Any]]] = iter(())
        self.by_workers = 0

    def parse_elsewhere(self, workers: Workers) -> None:
        """Have the workers parse, in the order they will be asked for, the files the cache
        lacks, when there are many of them."""
        missing = [path for path, key in self.files.items() if key not in self.known]
        if workers.count > 1 and len(missing) >= PARALLEL_PARSE_FILES:
            size = max(8, len(missing) // (8 * workers.count))
            shares = [missing[i : i + size] for i in range(0, len(missing), size)]
            self.coming = workers.map(_parse_share, shares)

    def _parsed_elsewhere(self, path: Path) -> Any:
        while path not in self.fresh:
            share = next(self.coming, None)
            if share is None:
                return None
            self.fresh.update(share)
        return self.fresh.pop(path)

    def parse(self, path: Path) -> Parsed:
        key = self.files.get(path)
        hit = self.known.pop(key, None) if key is not None else None
        if not (isinstance(hit, tuple) and len(hit) == 2 and isinstance(hit[0], Parsed)):
            found = self._parsed_elsewhere(path)
            self.by_workers += found is not None
            key, hit = found if found is not None else _parse_fresh(path)
        self.used[key] = hit
        for note, digest_hash in zip(hit[0].digest.notes, hit[1], strict=True):
            self.hashes[id(note)] = (note, digest_hash)
        return hit[0]

    def save(self, cache: Cache) -> None:
        """Keep the files parsed in this build (and no others) for the next."""
        cache.save_parsed(self.used)

    def note_hash(self, note: Note) -> str:
        # By identity: hashing a Note by value would rehash all its text on every lookup.
        found = self.hashes.get(id(note))
        if found is None or found[0] is not note:
            found = self.hashes[id(note)] = (note, note_hash(note))
        return found[1]


def build(
    src: Path,
    out: Path,
    settings: Settings,
    progress: Progress | None = None,
) -> BuildReport:
    """Build SRC into OUT. Raises FeedsError (with every problem) and then leaves OUT untouched."""
    start = time.perf_counter()
    cache = Cache(Path(settings.cache_dir))
    with cache.locked(), _few_collections():
        report = _build(src, out, settings, cache, progress)
    report.elapsed = time.perf_counter() - start
    return report


BUILD_GC_THRESHOLD = 20_000
"""Allocations between two young-generation collections during a build (Python's default: 700)."""


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    # A build allocates hundreds of thousands of objects that live as long as it does (render
    # index, file records, job keys) and makes few cycles: at the default threshold the
    # collector ran over 500 times in a one-digest build, a tenth of its time.
    before = gc.get_threshold()
    gc.set_threshold(BUILD_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _build(
    src: Path, out: Path, settings: Settings, cache: Cache, progress: Progress | None
) -> BuildReport:
    report = BuildReport()
    start = time.perf_counter()
    _recover(out)
    code = code_salt(settings)
    salt = input_salt(settings, code)
    known_stats = cache.load_input_stats()
    inputs = _read_inputs(src, out, salt, known_stats)
    if inputs.stats != known_stats:
        cache.save_input_stats(inputs.stats)
    last_files: dict[str, Written] | None = None
    if cache.load_fingerprint(out) == inputs.fingerprint(inputs.state):
        _, last_files, last_warnings = cache.load_record(out)
        if (
            all(_stat_matches(out / path, w) for path, w in last_files.items())
            and _existing_files(out).keys() == last_files.keys()
        ):
            report.unchanged = len(last_files)
            report.warnings = [Problem(*w, severity="warning") for w in last_warnings]
            report.timings["parse"] = time.perf_counter() - start
            return report
    report.timings["parse"] = time.perf_counter() - start

    # Imports the renderers (only when there is something to build) and starts the workers
    # before the archive is loaded.
    from .jobs import Workers
    from .plan import worker_count

    with Workers(settings, cache.objects, worker_count(settings)) as workers:
        if last_files is None:  # loaded once the workers are forked: they need no copy
            last_files = cache.load_record(out)[1]
        in_out = _InOut(out, cache, last_files, workers)  # a worker looks while the archive loads
        try:
            return _rebuild(
                src, out, settings, cache, code, inputs, in_out, workers, report, progress
            )
        finally:
            in_out.give_back()
            gc.unfreeze()


def _rebuild(
    src: Path,
    out: Path,
    settings: Settings,
    cache: Cache,
    code: str,
    inputs: _Inputs,
    in_out: _InOut,
    workers: Workers,
    report: BuildReport,
    progress: Progress | None,
) -> BuildReport:
    start = time.perf_counter()
    # The archive lives as long as the build and holds no cycles: it loads with the garbage
    # collector off and is then frozen out of its collections, which would otherwise walk its
    # millions of objects again and again (the first one right after loading).
    collecting = gc.isenabled()
    gc.disable()
    try:
        memo = _ParseMemo(cache, inputs.files)
        memo.parse_elsewhere(workers)
        loaded = read_archive(src, memo.parse)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    if loaded.errors:
        raise ParseError.from_problems(loaded.errors)
    report.warnings.extend(loaded.warnings)
    report.parsed_by_workers = memo.by_workers
    updates = resolve_updates(
        loaded.archive, parse_state(inputs.state), settings.tz, memo.note_hash
    )
    gc.freeze()
    report.timings["parse"] += time.perf_counter() - start

    from .plan import plan

    state = b""
    existing: dict[str, int] = {}
    staged: tuple[Path, dict[str, int]] | None = None

    def meanwhile() -> None:
        # What needs nothing rendered, done while the workers render.
        nonlocal state, existing, staged
        began = time.perf_counter()
        memo.save(cache)
        state = dump_state(updates.state)
        existing, staged = in_out.files(), in_out.staged()
        report.timings["write"] = report.timings.get("write", 0.0) + time.perf_counter() - began

    planned = plan(
        loaded.archive,
        settings,
        updates,
        cache,
        code,
        memo.note_hash,
        in_out.present,
        workers,
        progress,
        meanwhile,
    )
    workers.close()  # everything is rendered: give their memory back before staging
    for stage, seconds in planned.timings.items():
        report.timings[stage] = report.timings.get(stage, 0.0) + seconds
    report.rendered, report.reused, report.workers = (
        planned.rendered,
        planned.reused,
        planned.workers,
    )
    start = time.perf_counter()
    files, tidying = _stage_and_swap(
        out,
        existing,
        planned.outputs,
        cache.objects,
        in_out.last_files,
        in_out.vouched,
        staged,
        report,
    )
    try:
        cache.save_index(planned.index)
        cache.objects.collect_garbage({o.sha for o in planned.outputs.values()})
        report.warnings.extend(planned.warnings)
        _write_if_changed(src / STATE_FILE, state)
        cache.save_record(
            out,
            inputs.fingerprint(state),  # as the next build will find it
            files,
            [(w.message, w.source, w.line) for w in report.warnings],
        )
    finally:
        if tidying is not None:
            tidying.join()
    report.timings["write"] = report.timings.get("write", 0.0) + time.perf_counter() - start
    return report


def _write_if_changed(path: Path, data: bytes) -> None:
    if not (path.exists() and path.read_bytes() == data):
        write_atomic(path, data)


def _file_sha(path: Path) -> str | None:
    try:
        return sha256(path.read_bytes())
    except OSError:
        return None


def _stage_and_swap(
    out: Path,
    existing: dict[str, int],
    outputs: dict[str, Output],
    objects: ObjectStore,
    last_files: dict[str, Written],
    vouched: set[str],
    staged: tuple[Path, dict[str, int]] | None,
    report: BuildReport,
) -> tuple[dict[str, Written], threading.Thread | None]:
    """Make OUT hold exactly `outputs`; returns how each file was left, for the next build, and
    a thread still tidying up beside OUT (join it before the process ends).

    A file whose bytes are unchanged keeps its inode and mtime. When nothing changed at all,
    OUT is not touched. Every object placed was written by this build or verified when planned.
    `existing`: the files in OUT (_existing_files); `vouched`: those found as the last build
    left them (_InOut.present), so their stat is not taken twice; `staged`: the spare tree
    taken as this build's staging tree, and its files (_InOut.staged); None: staged afresh.
    """
    root = os.fspath(out)
    unchanged: dict[str, Written] = {}
    for path, output in outputs.items():
        if path not in existing:
            continue
        target = f"{root}/{path}"
        known = last_files.get(path)
        if known is not None and known.sha == output.sha and path in vouched:
            unchanged[path] = known  # as the last build left it: present() checked its stat
            continue
        st = os.stat(target)
        if known is not None and _vouches(st, known):
            same = known.sha == output.sha
        else:
            same = _file_sha(Path(target)) == output.sha
        if same:
            unchanged[path] = Written(output.sha, output.size, st.st_mtime_ns, st.st_ino)
    report.unchanged = len(unchanged)
    report.written = sorted(p for p in outputs if p not in unchanged)
    report.removed = sorted(existing.keys() - outputs.keys())
    report.bytes_written = sum(outputs[p].size for p in report.written)
    if not report.written and not report.removed and out.is_dir():
        return unchanged, None

    spare = _spare_path(out)
    staging = staged[0] if staged is not None else _staging_path(out)
    files: dict[str, Written] | None = None
    if staged is not None:
        try:
            files = _update_tree(staging, out, outputs, unchanged, objects, staged[1])
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # built afresh below
    if files is None:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            files = _update_tree(staging, out, outputs, unchanged, objects, {})  # every file anew
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    replaced = _swap_in(staging, out)
    if replaced is not None:
        replaced.rename(spare)  # the next build stages in it
        return files, None
    # A first build has no replaced tree to keep: make the spare one meanwhile.
    linker = threading.Thread(target=_link_spare, args=(out, spare))
    linker.start()
    return files, linker


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
    out: Path,
    outputs: dict[str, Output],
    unchanged: dict[str, Written],
    objects: ObjectStore,
    present: dict[str, int],
) -> dict[str, Written]:
    """Turn the tree at `staging` (empty, or the spare tree of an earlier build) into the new one.

    `present`: every file in it (_existing_files), listed once it had this build's own name. A
    file there is kept only when it is the very inode OUT holds with unchanged bytes (that stat
    vouched for it); every other file is replaced or removed. So only what changed since that
    build is written, and anything else the tree holds cannot leak into the new one.
    """
    root, stage = os.fspath(out), os.fspath(staging)
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
            files[path] = _place(objects, outputs[path], Path(target))
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


def _place(objects: ObjectStore, output: Output, target: Path) -> Written:
    """Put an object's bytes at target: a hard link where the file system allows, else a copy."""
    source = objects.path(output.sha)
    try:
        os.link(source, target)
    except OSError:
        data = objects.read_verified(output.sha)
        if data is None:
            raise FeedsError(f"the cache lost the bytes of {output.path}", str(source)) from None
        target.write_bytes(data)
    st = target.stat()
    return Written(output.sha, output.size, st.st_mtime_ns, st.st_ino)


def _staging_dirs(out: Path) -> list[Path]:
    return [
        *sorted(out.parent.glob(f".{out.name}.staging-*")),
        *sorted(out.parent.glob(f".{out.name}.spare-*")),
        *sorted(out.parent.glob(f".{out.name}.old-*")),
    ]


def _recover(out: Path) -> None:
    """Finish what an interrupted build left: restore a moved-away dist/, drop stale staging dirs."""
    leftovers = _staging_dirs(out)
    olds = [p for p in leftovers if ".old-" in p.name]
    if not out.exists() and olds:
        olds[-1].rename(out)
    for path in _staging_dirs(out):
        shutil.rmtree(path, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic step (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _swap_in(staging: Path, out: Path) -> Path | None:
    """Put the staged tree at OUT; returns where the replaced tree now is (None if there was none)."""
    if not out.exists():
        staging.rename(out)
        return None
    if _exchange(staging, out):
        return staging
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    out.rename(old)
    staging.rename(out)
    return old
