"""`feeds build`: the whole pipeline on one screen (`Build.run`).

fingerprint the inputs → stop if nothing changed → load the archive → plan and render what
the cache lacks → publish dist/ in one swap → record what was done, for the next build.
Any error before the swap leaves dist/ as it was.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .cache import BuildRecord, Cache, Written
from .config import Settings, mail_readiness
from .errors import FeedsError, Problem
from .files import remove_stale_temporaries, write_atomic
from .inputs import Inputs, ParsedArchive, v1_hashes
from .model import DigestRef
from .pool import Pool, cpu_count
from .publish import Dist, Staging
from .state import STATE_FILE, Updates, changes, dump_state, parse_state, resolve_updates

if TYPE_CHECKING:  # the renderers are imported only by a build with something to render
    from .plan import Collected, Planned, Progress


@dataclass
class BuildReport:
    """What a build did: files written, unchanged and removed, and where the time went."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)  # of digests left out (keep_going)
    left_out: list[str] = field(default_factory=list)  # digest files left out (keep_going)
    state_changed: str | None = None  # what changed in .feeds-state.json ("2 new notes")
    timings: dict[str, float] = field(default_factory=dict)
    bytes_written: int = 0
    rendered: int = 0
    reused: int = 0
    search_indexed: int = 0  # search shards Pagefind wrote (the others came from the cache)
    workers: int = 1
    parsed_by_workers: int = 0
    elapsed: float = 0.0

    def summary(self, out: Path) -> str:
        """`Built dist: 12 written, … in 0.84s (rendered 40, reused 2960, 1 worker; parse …)`.

        Stage times add up the time of every worker, so with several they exceed the wall time.
        """
        timing = ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in self.timings.items())
        workers = f"{self.workers} worker" + ("s" if self.workers > 1 else "")
        return (
            f"Built {out}: {len(self.written)} written, {self.unchanged} unchanged, "
            f"{len(self.removed)} removed in {self.elapsed:.2f}s "
            f"(rendered {self.rendered}, reused {self.reused}, {workers}; {timing})"
        )


def build(
    src: Path, out: Path, settings: Settings, progress: Progress | None = None
) -> BuildReport:
    """Build SRC into OUT. Raises FeedsError (with every problem) and then leaves OUT untouched."""
    try:
        return Build(src, out, settings, progress).run()
    except OSError as exc:  # a full disk, a folder without permission: what, where, and why
        where = exc.filename if isinstance(exc.filename, str) else None
        raise FeedsError(
            f"the build stopped, {out} is as it was: {exc.strerror or exc}", where
        ) from None


class Build:
    """One build of SRC into OUT: its phases, in the order `run` calls them."""

    cache: Cache
    dist: Dist

    def __init__(self, src: Path, out: Path, settings: Settings, progress: Progress | None):
        # OUT a link (dist -> www): the folder it names is the one staged beside and swapped.
        out = Path(os.path.realpath(out)) if out.is_symlink() else out
        self.src, self.out, self.settings, self.progress = src, out, settings, progress
        self.report = BuildReport()
        self._start = self._lap = time.perf_counter()

    def run(self) -> BuildReport:
        cache_dir = Path(self.settings.build.cache_dir)
        with (
            no_collections(),
            Cache.open(cache_dir) as self.cache,
            Dist.open(self.out) as self.dist,
        ):
            remove_stale_temporaries(self.src)  # a build killed while writing the state
            inputs = self.fingerprint()
            if self.nothing_changed(inputs):
                return self.done()
            # The workers fork first, before the archive loads, so that they stay small.
            with self.pool() as pool, self.dist.staging(self.cache, pool) as staging:
                collected, refs, state = self.render_archive(inputs, staging, pool)
                give_back_memory()  # the archive's, before Pagefind runs beside this process
                self.index_search(refs, staging, collected)
                files = self.publish(staging, collected)
            self.record(inputs, state, collected, files)
        return self.done()

    def render_archive(
        self, inputs: Inputs, staging: Staging, pool: Pool
    ) -> tuple[Collected, list[DigestRef], bytes]:
        """Load, plan, keep and render: every output in the object store, the digests (for the
        search index) and the note state. The archive is let go on return, before Pagefind
        runs beside this process."""
        archive, updates = self.load(inputs, pool)
        planned = self.plan(archive, updates, inputs.salt, staging, pool)
        state = self.keep(archive, updates, inputs)  # while the workers render
        collected = self.render(planned, pool)
        return collected, [digest.ref for digest in archive.model.digests], state

    # -- the phases ------------------------------------------------------------------------

    def fingerprint(self) -> Inputs:
        site, templates = self.settings.site, self.settings.build.templates_dir
        return Inputs.read(self.src, self.out, site, templates, self.cache)

    def nothing_changed(self, inputs: Inputs) -> bool:
        """The last build had the same inputs, and OUT is as it left it."""
        if self.cache.load_fingerprint(self.out) != inputs.fingerprint(inputs.state):
            return False
        record = self.cache.load_record(self.out)
        if not self.dist.unchanged(record):
            return False
        self.report.unchanged = len(record.columns[0])
        self.report.warnings = [p for p in record.problems if p.severity == "warning"]
        self.report.errors = [p for p in record.problems if p.severity == "error"]
        self.report.left_out = sorted({p.source for p in self.report.errors if p.source})
        self._time("parse")
        return True

    def pool(self) -> Pool:
        from .renderer import start_renderer

        build, cache = self.settings.build, self.cache
        renderer = (self.settings.site, build.templates_dir, cache.objects.root, cache.items.path)
        return Pool(self.settings.build.workers or cpu_count(), start_renderer, renderer)

    def load(self, inputs: Inputs, pool: Pool) -> tuple[ParsedArchive, Updates]:
        archive = inputs.load(self.cache, pool, self.settings.build.keep_going)
        previous = parse_state(inputs.state)
        archive.model, updates = resolve_updates(
            archive.model, previous, self.settings.site.tz, v1_hashes
        )
        gc.freeze()  # what was loaded lives as long as the build
        self.report.warnings.extend(archive.warnings)
        self.report.errors, self.report.left_out = list(archive.errors), list(archive.left_out)
        self.report.warnings.extend(
            Problem(message, severity="warning") for message in mail_readiness(self.settings)
        )
        self.report.parsed_by_workers = archive.by_workers
        self._time("parse")
        return archive, updates

    def plan(
        self, archive: ParsedArchive, updates: Updates, salt: str, staging: Staging, pool: Pool
    ) -> Planned:
        from .jobs import KeyParts
        from .newsletter import check_mjml_templates
        from .plan import plan
        from .templating import make_environment

        env = make_environment(self.settings.build.templates_dir)
        check_mjml_templates(env)
        keys = KeyParts(salt, env)
        site, cache = self.settings.site, self.cache
        planned = plan(archive.model, site, updates, keys, cache, staging.present, pool)
        self.report.rendered, self.report.reused = planned.rendered, planned.reused
        self._time("plan")
        return planned

    def keep(self, archive: ParsedArchive, updates: Updates, inputs: Inputs) -> bytes:
        """What needs nothing rendered: the parse cache saved, the note state serialised (and,
        with frozen_state, refused if it would change: it dates what readers see)."""
        self.cache.save_parsed(archive.parsed, inputs.code)
        state, before = dump_state(updates.state), inputs.state
        if state != before:
            said = ", ".join(changes(updates)) or "rewritten"
            self.report.state_changed = said
            if self.settings.build.frozen_state:
                raise FeedsError(
                    f"the build would change it ({said}): build where the digests are written "
                    f"and commit {STATE_FILE} with them",
                    str(self.src / STATE_FILE),
                )
        self._time("write")
        return state

    def render(self, planned: Planned, pool: Pool) -> Collected:
        collected = planned.collect(self.progress)
        pool.close()  # everything is rendered: give the workers' memory back before staging
        self.report.workers = pool.used
        for stage, seconds in collected.timings.items():
            self.report.timings[stage] = self.report.timings.get(stage, 0.0) + seconds
        self.report.warnings.extend(collected.warnings)
        self._lap = time.perf_counter()
        return collected

    def index_search(self, refs: list[DigestRef], staging: Staging, collected: Collected) -> None:
        """The search indexes of the digest pages (feeds.search): Pagefind reads the pages."""
        from .plan import add_output
        from .search import SearchIndexer

        site = self.settings.site
        base_path = urlsplit(site.base_url).path
        indexer = SearchIndexer(self.cache, base_path, staging.present, self.dist.root)
        for output in indexer.outputs(refs, site.search_shard_size, collected.outputs):
            add_output(collected.outputs, output)
        self.report.search_indexed = indexer.indexed
        self._time("search")

    def publish(self, staging: Staging, collected: Collected) -> dict[str, Written]:
        files, changes = staging.publish(collected.outputs, self.cache.objects)
        report = self.report
        report.written, report.removed = changes.written, changes.removed
        report.unchanged, report.bytes_written = changes.unchanged, changes.bytes_written
        return files

    def record(
        self, inputs: Inputs, state: bytes, collected: Collected, files: dict[str, Written]
    ) -> None:
        self.cache.save_index(collected.index)
        self.cache.objects.collect_garbage({o.sha for o in collected.outputs.values()})
        self.cache.items.collect_garbage(collected.items)
        state_path = self.src / STATE_FILE
        if not (state_path.exists() and state_path.read_bytes() == state):
            write_atomic(state_path, state)
        fingerprint = inputs.fingerprint(state)  # as the next build will find it
        problems = [*self.report.warnings, *self.report.errors]
        record = BuildRecord.of(fingerprint, files, problems)
        self.cache.save_record(self.out, record)
        self._time("write")

    # -- timing ----------------------------------------------------------------------------

    def _time(self, stage: str) -> None:
        now = time.perf_counter()
        self.report.timings[stage] = self.report.timings.get(stage, 0.0) + now - self._lap
        self._lap = now

    def done(self) -> BuildReport:
        self.report.elapsed = time.perf_counter() - self._start
        return self.report


def give_back_memory() -> None:
    """Return the memory of what the build let go to the system (glibc keeps freed memory for
    the process that freed it: 50 MiB of the 2,000-digest archive's); elsewhere, nothing."""
    import ctypes  # here: a build with nothing to do never gets this far

    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this process runs with
    except (OSError, AttributeError, TypeError):  # not glibc (Windows cannot open None)
        return
    trim(0)


@contextlib.contextmanager
def no_collections() -> Iterator[None]:
    """The garbage collector as a build's process wants it: off, but where the build lets
    memory go (give_back_memory), and never over the loaded archive. Jobs render with it on
    (feeds.renderer.start_renderer).

    A build allocates hundreds of thousands of objects that live as long as it does (render
    index, file records, job keys) and makes next to no cycles, so collections would walk
    them again and again to free nearly nothing. What the build freezes out of collections
    is unfrozen at the end.
    """
    collecting, threshold = gc.isenabled(), gc.get_threshold()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)  # as it was (rendering here sets its own: feeds.renderer)
        if collecting:
            gc.enable()
