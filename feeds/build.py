"""`feeds build`: plan every output as path -> bytes, then replace dist/ atomically.

A file whose bytes are unchanged is carried over as a hard link, so its
modification time stays and sync tools upload nothing; a build with no change
at all touches nothing. Any error before the swap leaves dist/ as it was.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings
from .errors import FeedsError, Problem
from .feed import render_feeds
from .newsletter import render_newsletters
from .parse import load_archive
from .site import render_site
from .state import STATE_FILE, dump_state, parse_state, resolve_updates
from .templating import make_environment

Progress = Callable[[str, int], None]
"""Told (stage, files so far) as the build goes: for a progress display."""


@dataclass
class BuildReport:
    """What a build did: files written, unchanged and removed, and where the time went."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    bytes_written: int = 0

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())


def _timed(
    stage: str, produced: Iterable[tuple[str, bytes]], report: BuildReport
) -> Iterator[tuple[str, bytes]]:
    """Pass outputs through, adding the time spent producing them (not writing them) to `stage`."""
    iterator = iter(produced)
    report.timings.setdefault(stage, 0.0)
    while True:
        start = time.perf_counter()
        output = next(iterator, None)
        report.timings[stage] += time.perf_counter() - start
        if output is None:
            return
        yield output


def plan_outputs(
    src: Path, settings: Settings, report: BuildReport
) -> tuple[Iterator[tuple[str, bytes]], bytes]:
    """Every output of the build, produced lazily, and the note state to record beside the digests.

    Outputs are streamed to the writer rather than held: a large archive needs
    memory for its parsed model, not for its whole site.
    """
    start = time.perf_counter()
    loaded = load_archive(src)
    report.warnings.extend(loaded.warnings)
    state_path = src / STATE_FILE
    previous = parse_state(state_path.read_bytes() if state_path.exists() else None)
    updates = resolve_updates(loaded.archive, previous, settings.tz)
    env = make_environment(settings.templates_dir)
    report.timings["parse"] = time.perf_counter() - start
    outputs = itertools.chain(
        _timed("feeds", render_feeds(loaded.archive, settings, updates, env), report),
        _timed(
            "newsletters",
            render_newsletters(loaded.archive, settings, env, report.warnings),
            report,
        ),
        _timed("pages", render_site(loaded.archive, settings, env), report),
    )
    return outputs, dump_state(updates.state)


def build(
    src: Path, out: Path, settings: Settings, progress: Progress | None = None
) -> BuildReport:
    """Build SRC into OUT. Raises FeedsError (with every problem) and then leaves OUT untouched."""
    report = BuildReport()
    outputs, state = plan_outputs(src, settings, report)
    start = time.perf_counter()
    write_tree(out, outputs, report, progress)
    _write_if_changed(src / STATE_FILE, state)
    produced = sum(v for k, v in report.timings.items() if k != "parse")
    report.timings["write"] = time.perf_counter() - start - produced
    return report


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _existing_files(root: Path) -> set[str]:
    if not root.is_dir():
        return set()
    return {
        str(Path(dirpath, name).relative_to(root).as_posix())
        for dirpath, _, names in os.walk(root)
        for name in names
    }


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def write_tree(
    out: Path,
    outputs: Iterable[tuple[str, bytes]],
    report: BuildReport,
    progress: Progress | None = None,
) -> None:
    """Make OUT hold exactly `outputs`, staged beside it and swapped in one step.

    An unchanged file is hard-linked from OUT into the stage (its mtime stays);
    when nothing changed at all, the stage is dropped and OUT is not touched.
    Any exception while outputs are produced drops the stage and leaves OUT as it was.
    """
    _recover(out)
    existing = _existing_files(out)
    staging = out.with_name(f".{out.name}.staging-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    produced: set[str] = set()
    folders: set[Path] = {staging}
    try:
        for path, data in outputs:
            if path in produced:
                raise FeedsError(f"two outputs would be written to {out}/{path}")
            produced.add(path)
            target = staging / path
            if target.parent not in folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.add(target.parent)
            if path in existing and _same(out / path, data):
                os.link(out / path, target)
                report.unchanged += 1
            else:
                target.write_bytes(data)
                report.written.append(path)
                report.bytes_written += len(data)
            if progress is not None and len(produced) % 100 == 0:
                progress("building", len(produced))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.written.sort()
    report.removed = sorted(existing - produced)
    if not report.written and not report.removed and out.is_dir():
        shutil.rmtree(staging)
        return
    _swap_in(staging, out)


def _staging_dirs(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.staging-*")) + sorted(
        out.parent.glob(f".{out.name}.old-*")
    )


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


def _swap_in(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.rename(out)
        return
    if _exchange(staging, out):
        shutil.rmtree(staging)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    out.rename(old)
    staging.rename(out)
    shutil.rmtree(old)
