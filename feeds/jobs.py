"""Units of rendering work: each renders a few outputs from exactly the data it carries.

A job holds no reference to the archive, so it can run in any process, and its outputs
depend on nothing but its fields, the settings and the templates: the hash of those
(`JobKeys`) names them in the render cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import jinja2

from .cache import Entry, ObjectStore, Output
from .config import Settings
from .errors import Problem
from .feed import ITEM_TEMPLATE, FeedEntry, import_feedgen, render_feed, render_opml
from .model import LANGS, Digest, DigestRef, Lang, Note, NoteRef
from .newsletter import MJML_TEMPLATE, TEXT_TEMPLATE, render_newsletter
from .site import DIGEST_TEMPLATE, TAG_TEMPLATE, SiteRenderer, TagPages
from .templating import make_environment, templates_hash
from .urls import (
    HOME_PATH,
    NOT_FOUND_PATH,
    OPML_PATH,
    ROBOTS_PATH,
    SITEMAP_PATH,
    archive_page_path,
    digest_page_path,
    tag_index_path,
    tag_page_path,
    tag_slug,
)


@dataclass(frozen=True, slots=True)
class DigestJob:
    """A digest's web page and newsletters, in both languages."""

    digest: Digest
    newer: DigestRef | None
    older: DigestRef | None


@dataclass(frozen=True, slots=True)
class TagPageJob:
    """One page of a tag, in both languages: its notes, newest first."""

    tag: str
    notes: tuple[tuple[DigestRef, NoteRef], ...]
    pages: TagPages


@dataclass(frozen=True, slots=True)
class FeedJob:
    """The three feed files of one language (tag None) or of one tag in it."""

    lang: Lang
    tag: str | None
    entries: tuple[FeedEntry, ...]


@dataclass(frozen=True, slots=True)
class SiteJob:
    """The site-wide files: landing page, archives, tag indexes, 404, sitemap, robots, OPML.

    They depend on the whole archive, so they render every build, beside the other jobs.
    """

    refs: tuple[DigestRef, ...]  # every digest, newest first
    tag_counts: tuple[tuple[str, int], ...]  # display spelling and notes, most used first
    tags: tuple[str, ...]  # display spellings, by key
    sitemap: tuple[tuple[str, date], ...]  # path and when it last changed


LATEST_ON_HOME = 10

T = TypeVar("T")
R = TypeVar("R")

Job = DigestJob | TagPageJob | FeedJob


TEMPLATES_OF: dict[type, tuple[str, ...]] = {
    DigestJob: (DIGEST_TEMPLATE, MJML_TEMPLATE, TEXT_TEMPLATE),
    TagPageJob: (TAG_TEMPLATE,),
    FeedJob: (ITEM_TEMPLATE,),
}
"""The templates each kind of job renders (with those they extend, include or import)."""


def job_salts(salt: str, env: jinja2.Environment) -> dict[type, str]:
    """Per kind of job, the salt of its keys: `salt` (code, libraries, settings) and the
    templates it renders, so that editing one template renders again only what uses it."""
    return {
        kind: hashlib.sha256(f"{salt}\n{templates_hash(env, roots)}".encode()).hexdigest()
        for kind, roots in TEMPLATES_OF.items()
    }


def _ref(ref: DigestRef | None) -> str:
    return "-" if ref is None else f"{ref.id} {ref.date} {ref.part} {ref.size}"


class JobKeys:
    """Job keys for one build: a hash of everything a job's outputs depend on, besides the salt
    of its kind (job_salts: code, libraries, settings, the templates it renders).

    A digest or note shows up in many jobs (a note in its tag pages and in several feeds, per
    language), so its part of a key is made once per build and found again by identity.
    """

    def __init__(self, salts: dict[type, str], note_hash: Callable[[Note], str]):
        self.salts = salts
        self.note_hash = note_hash
        self._parts: dict[int, tuple[object, str]] = {}  # id -> (the object, to pin the id; part)

    def _part(self, thing: Any, make: Callable[[Any], str]) -> str:
        found = self._parts.get(id(thing))
        if found is None or found[0] is not thing:
            found = self._parts[id(thing)] = (thing, make(thing))
        return found[1]

    def _parts_of(self, things: Sequence[Any], make: Callable[[Any], str]) -> list[str]:
        known = self._parts  # inlined lookups: this runs for every note of every tag page and feed
        return [
            found[1]
            if (found := known.get(id(thing))) is not None and found[0] is thing
            else self._part(thing, make)
            for thing in things
        ]

    def _digest(self, ref: DigestRef | None) -> str:
        return "-" if ref is None else self._part(ref, _ref)

    def _listed(self, listed: tuple[DigestRef, NoteRef]) -> str:
        # A tag page lists titles and authors only: a note's text can change without it.
        ref, n = listed
        return f"{self._digest(ref)} {n.slug}\0{n.title}\0{', '.join(n.authors)}"

    def _entry(self, e: FeedEntry) -> str:
        return (
            f"{self._digest(e.digest)} {e.index} {e.note.slug} {self.note_hash(e.note)} {e.updated}"
        )

    def __call__(self, job: Job) -> str:
        if isinstance(job, DigestJob):
            d = job.digest
            # Not d.source: moving the project must not invalidate the cache (see warnings_of).
            parts = ["digest", _ref(d.ref), self._digest(job.newer), self._digest(job.older)]
            parts += [f"{n.slug} {self.note_hash(n)}" for n in d.notes]
        elif isinstance(job, TagPageJob):
            parts = ["tag", job.tag, repr(job.pages)]
            parts += self._parts_of(job.notes, self._listed)
        else:
            parts = ["feed", job.lang, job.tag or "-"]
            parts += self._parts_of(job.entries, self._entry)
        # Slugs, ids and tags hold no whitespace or newlines, so joining them is unambiguous.
        salt = self.salts[type(job)]
        return hashlib.sha256("\n".join([salt, *parts]).encode()).hexdigest()


@dataclass
class Rendered:
    """A job's outputs, stored in the object store, its warnings and where its time went."""

    entry: Entry
    seconds: dict[str, float] = field(default_factory=dict)


class Renderer:
    """Runs jobs with one Jinja environment; writes their outputs into the object store."""

    def __init__(self, settings: Settings, store: ObjectStore):
        self.settings = settings
        self.store = store
        self.env = make_environment(settings.templates_dir)
        self.site = SiteRenderer(settings, self.env)

    def outputs(self, job: Job) -> tuple[list[tuple[str, bytes]], list[Problem], dict[str, float]]:
        seconds: dict[str, float] = {}
        warnings: list[Problem] = []
        outputs: list[tuple[str, bytes]] = []
        start = time.perf_counter()
        if isinstance(job, DigestJob):
            for lang in LANGS:
                page = self.site.digest_page(job.digest, lang, job.newer, job.older)
                outputs.append((digest_page_path(lang, job.digest.id), page))
            middle = time.perf_counter()
            seconds["pages"] = middle - start
            for lang in LANGS:
                mail, found = render_newsletter(job.digest, lang, self.settings, self.env)
                outputs += mail
                warnings += found
            seconds["newsletters"] = time.perf_counter() - middle
        elif isinstance(job, TagPageJob):
            for lang in LANGS:
                page = self.site.tag_page(lang, job.tag, job.notes, job.pages)
                outputs.append((tag_page_path(lang, tag_slug(job.tag), job.pages.number), page))
            seconds["pages"] = time.perf_counter() - start
        else:
            outputs = render_feed(job.lang, job.tag, job.entries, self.settings, self.env)
            seconds["feeds"] = time.perf_counter() - start
        return outputs, warnings, seconds

    def site_wide(self, job: SiteJob) -> Rendered:
        start = time.perf_counter()
        site = self.site
        outputs = [(HOME_PATH, site.home(job.refs[:LATEST_ON_HOME]))]
        for lang in LANGS:
            outputs.append((archive_page_path(lang), site.archive_page(lang, job.refs)))
            outputs.append((tag_index_path(lang), site.tag_index(lang, job.tag_counts)))
        outputs.append((NOT_FOUND_PATH, site.not_found()))
        outputs.append((SITEMAP_PATH, site.sitemap(job.sitemap)))
        outputs.append((ROBOTS_PATH, site.robots()))
        outputs.append((OPML_PATH, render_opml(job.tags, self.settings)))
        return self._stored(outputs, [], {"pages": time.perf_counter() - start}, None)

    def run(self, job: Job | SiteJob) -> Rendered:
        if isinstance(job, SiteJob):
            return self.site_wide(job)
        outputs, warnings, seconds = self.outputs(job)
        own = job.digest.source if isinstance(job, DigestJob) else None
        return self._stored(outputs, warnings, seconds, own)

    def _stored(
        self,
        outputs: list[tuple[str, bytes]],
        warnings: list[Problem],
        seconds: dict[str, float],
        own: str | None,
    ) -> Rendered:
        start = time.perf_counter()
        stored = tuple(Output(path, self.store.put(data), len(data)) for path, data in outputs)
        seconds["write"] = time.perf_counter() - start
        return Rendered(
            Entry(
                stored,
                tuple(("" if w.source == own else w.source, w.message, w.line) for w in warnings),
            ),
            seconds,
        )


_WORKER: Renderer | None = None


def _start_worker(settings: Settings, store: ObjectStore) -> None:
    global _WORKER
    _WORKER = Renderer(settings, store)
    import_feedgen()  # here, not in the build's main process, which only plans
    # Compile the templates while the build loads the archive, before the first job needs them.
    for name in _WORKER.env.list_templates(extensions=["html", "mjml", "txt", "xml"]):
        with contextlib.suppress(Exception):  # a broken one is reported by the job that uses it
            _WORKER.env.get_template(name)


def _run_in_worker(jobs: list[Job | SiteJob]) -> list[Rendered]:
    assert _WORKER is not None
    return [_WORKER.run(job) for job in jobs]


class _Batch:
    """Jobs handed to a worker together: one message each way instead of one per job."""

    def __init__(self) -> None:
        self.jobs: list[Job | SiteJob] = []
        self.pending: Any = None

    def send(self, pool: Any) -> None:
        if self.pending is None:
            self.pending = pool.apply_async(_run_in_worker, (self.jobs,))

    def result(self, pool: Any, position: int) -> Rendered:
        self.send(pool)
        return self.pending.get()[position]  # type: ignore[no-any-return]


BATCH_GROWTH = 32
"""Batches grow by one job every this many jobs, up to MAX_BATCH: the first jobs go one by one,
so workers start at once; a build of thousands sends few messages."""
MAX_BATCH = 8


class Workers:
    """The processes that render jobs; with a count of 1, none (jobs run in this process).

    Started when a build begins and, where the system allows and no other thread runs, forked
    before the archive is loaded: each worker is then small, and has its templates ready by the
    time jobs are planned. A job handed to them starts at once, so they render while this
    process is still planning what else to render.
    """

    def __init__(self, settings: Settings, store: ObjectStore, count: int):
        self.settings = settings
        self.store = store
        self.count = count
        self.started = 0
        self._pool: Any = None
        self._here: Renderer | None = None  # for jobs run in this process, made when needed
        self._batch = _Batch()
        if count > 1:
            # Forking a process with other threads (feeds serve's) may copy a lock some thread
            # holds; then the workers start afresh instead.
            alone = threading.active_count() == 1
            fork = alone and "fork" in multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if fork else "spawn")
            self._pool = context.Pool(count, _start_worker, (settings, store))

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    @property
    def used(self) -> int:
        """How many processes rendered the jobs started so far."""
        return self.count if self._pool is not None and self.started else 1

    def _renderer(self) -> Renderer:
        if self._here is None:
            self._here = Renderer(self.settings, self.store)
        return self._here

    def start(self, job: Job | SiteJob) -> Callable[[], Rendered]:
        """Hand the job to a worker (in this process: run it when asked); returns how to get
        its result.

        Every job is a pure function of its fields, so the outputs are the same whatever the
        number of workers or the order they finish in.
        """
        self.started += 1
        pool = self._pool
        if pool is None:
            return lambda: self._renderer().run(job)
        batch = self._batch
        batch.jobs.append(job)
        position = len(batch.jobs) - 1
        if len(batch.jobs) >= min(MAX_BATCH, 1 + self.started // BATCH_GROWTH):
            batch.send(pool)
            self._batch = _Batch()
        return lambda: batch.result(pool, position)

    def map(self, function: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """function over items, results in order: on the workers as they finish, or here.

        function must be importable by name, since a worker may have been started afresh.
        """
        if self._pool is None:
            return map(function, items)
        return self._pool.imap(function, items)  # type: ignore[no-any-return]

    def flush(self) -> None:
        """Send the jobs not sent yet: there are no more to come."""
        if self._pool is not None and self._batch.jobs:
            self._batch.send(self._pool)
            self._batch = _Batch()


def warnings_of(job: Job, entry: Entry) -> list[Problem]:
    """The warnings a job gave, naming its digest file where it is now."""
    own = job.digest.source if isinstance(job, DigestJob) else None
    return [
        Problem(message, own if source == "" else source, line, severity="warning")
        for source, message, line in entry.warnings
    ]
