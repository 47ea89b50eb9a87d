"""Plan a build: every output of the archive, rendered or taken from the render cache.

The per-digest, per-tag and per-feed outputs come from jobs (feeds.jobs) keyed by a hash
of what they render from; the few site-wide files (landing page, archives, tag index,
404, sitemap, robots, OPML) depend on the whole archive and are rendered every time, by a
worker while this process plans the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

from .cache import Cache, Entry, Output
from .config import SiteSettings
from .errors import FeedsError, Problem
from .jobs import (
    LATEST_ON_HOME,
    DigestFeedJob,
    DigestJob,
    FeedJob,
    Job,
    KeyParts,
    ListedEntry,
    Rendered,
    SiteJob,
    TagPageJob,
    warnings_of,
)
from .model import (
    LANGS,
    Archive,
    DigestHead,
    DigestRef,
    Lang,
    NoteRef,
    Page,
    paginate,
    tag_key,
)
from .pool import Pending, Pool
from .renderer import render
from .search import shards
from .state import Updates, note_key
from .urls import (
    HOME_PATH,
    archive_page_path,
    digest_page_path,
    tag_index_path,
    tag_page_path,
    tag_slug,
)

Progress = Callable[[str, int], None]
"""Told (stage, files so far) as the build goes: for a progress display."""

TagList = list[tuple[DigestRef, NoteRef]]


def _tagged(
    archive: Archive[DigestHead], refs: tuple[DigestRef, ...], keys: KeyParts
) -> tuple[dict[str, str], dict[str, TagList]]:
    """Every tag (key -> display spelling, by key, as Archive.tags) and, per tag key, its notes
    newest first: one pass over the archive's tags, for both, which also makes each listed
    note's key part (KeyParts.listed)."""
    folded: dict[str, str] = {}  # spelling -> key: each spelling is folded once, not per note
    by_tag: dict[str, TagList] = {}
    for digest, ref in zip(archive.digests, refs, strict=True):
        digest_part = keys.digest(ref)
        for note in digest.notes:
            if not note.tags:
                continue
            listed = (ref, note.ref)
            keys.listed(listed, digest_part)
            for tag in note.tags:
                key = folded.get(tag)
                if key is None:
                    key = folded[tag] = tag_key(tag)
                by_tag.setdefault(key, []).append(listed)
    display: dict[str, str] = {}
    for tag, key in folded.items():
        display.setdefault(key, tag)  # the archive spells each tag one way (parse._display_tags)
    return dict(sorted(display.items())), by_tag


def tag_pages(notes: TagList, size: int) -> list[tuple[Page, TagList]]:
    """A tag's pages: the main one and numbered ones of older notes (model.paginate)."""
    return [(page, list(chunk)) for page, chunk in paginate(notes, size)]


TagPageList = list[tuple[Page, TagList]]


def _jobs(
    archive: Archive[DigestHead],
    refs: tuple[DigestRef, ...],
    settings: SiteSettings,
    updates: Updates,
    tags: dict[str, str],
    pages_of: dict[str, TagPageList],
    keys: KeyParts,
) -> Iterator[Job]:
    digests = archive.digests

    def page_of(index: int) -> DigestJob:
        newer = refs[index - 1] if index > 0 else None
        older = refs[index + 1] if index + 1 < len(refs) else None
        return DigestJob(digests[index], newer, older)

    # Feeds first: they cost the most to render and the least to key, so the workers start on
    # them while this process keys the rest. Each digest's page right after the language
    # feeds' documents that list its notes: a renderer reads its text again once for them all.
    to_come = {ref.id: index for index, ref in enumerate(refs)}
    for job in _feed_jobs(archive, refs, settings.feed_limit, updates, tags, keys):
        yield job
        if job.tag is None and job.lang == LANGS[-1]:
            for entry in job.entries:
                if (index := to_come.pop(entry.digest.id, None)) is not None:
                    yield page_of(index)
    newest = digests[: settings.digest_feed_limit] if settings.digest_feed_limit else digests
    for lang in LANGS:
        changed = tuple(_digest_updated(digest, lang, updates) for digest in newest)
        yield DigestFeedJob(lang, tuple(newest), changed)
    for index in sorted(to_come.values()):  # digests without notes
        yield page_of(index)

    for key, display in tags.items():
        for pages, notes in pages_of[key]:
            yield TagPageJob(display, tuple(notes), pages)


def _digest_updated(digest: DigestHead, lang: Lang, updates: Updates) -> datetime | None:
    """When a note of the digest last changed in the language (None: none ever did)."""
    found = [when for note in digest.notes if (when := updates.of(digest, note, lang))]
    return max(found, default=None)


@dataclass
class Planned:
    """Every job of a build: those the cache holds, and those handed to the pool to render.

    `collect` waits for the rendered ones and gives every output path with its content in
    the object store, and the render index for next time.
    """

    jobs: list[tuple[str, Job]]  # key and job, in the plan's order
    index: dict[str, Entry]  # key -> outputs, for the cached jobs
    rendering: list[tuple[str, Pending[Rendered]]]
    site_wide: Pending[Rendered]
    items: set[str]  # the key of every feed item in use

    @property
    def rendered(self) -> int:
        return len(self.rendering)

    @property
    def reused(self) -> int:
        return len(self.jobs) - len(self.rendering)

    def collect(self, progress: Progress | None = None) -> Collected:
        timings: dict[str, float] = {}  # seconds per stage, summed over the workers
        index = self.index
        for done, (key, pending) in enumerate(self.rendering, 1):
            result = pending.result()
            index[key] = result.entry
            for stage, seconds in result.seconds.items():
                timings[stage] = timings.get(stage, 0.0) + seconds
            if progress is not None and done % 50 == 0:
                progress("rendering", done)
        outputs: dict[str, Output] = {}
        for key, _ in self.jobs:
            for output in index[key].outputs:
                add_output(outputs, output)
        site = self.site_wide.result()
        for output in site.entry.outputs:
            add_output(outputs, output)
        for stage, seconds in site.seconds.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
        warnings = [w for key, job in self.jobs for w in warnings_of(job, index[key])]
        ordered = {key: index[key] for key, _ in self.jobs}
        return Collected(outputs, ordered, warnings, self.items, timings)


@dataclass
class Collected:
    """Every output of a build, the render index to keep, and what rendering said."""

    outputs: dict[str, Output]
    index: dict[str, Entry]
    warnings: list[Problem]
    items: set[str]  # the key of every feed item in use, for the item store to keep
    timings: dict[str, float]


def _feed_jobs(
    archive: Archive[DigestHead],
    refs: tuple[DigestRef, ...],
    size: int,
    updates: Updates,
    tags: dict[str, str],
    keys: KeyParts,
) -> Iterator[FeedJob]:
    """Per language, its feed and each tag's feed, each as its documents (model.paginate):
    the subscription document and, as RFC 5005 archives, numbered ones of older items.

    Language feeds first: they list every note once, so that the tag feeds after them find
    their items in the item store (feeds.fragments) rather than render them again."""
    key_of = {display: key for key, display in tags.items()}  # the archive's one spelling each
    keys_of: dict[tuple[str, ...], tuple[str, ...]] = {}  # a note's tags -> their keys, once each
    members: dict[str, list[int]] = {key: [] for key in tags}  # per tag, its notes by number
    listed: list[Listed] = [([], []) for _ in LANGS]  # per language
    of_key, item = updates.of_key, keys.item
    for digest, ref in zip(archive.digests, refs, strict=True):
        digest_part = keys.digest(ref)
        for position, note in enumerate(digest.notes):
            tag_keys = keys_of.get(note.tags)
            if tag_keys is None:  # each key once: two spellings of a tag list a note once
                tag_keys = keys_of[note.tags] = tuple(
                    {key_of.get(tag) or tag_key(tag): None for tag in note.tags}
                )
            number = len(listed[0][0])
            for key in tag_keys:
                members[key].append(number)
            part, state_key = keys.note_part(note, position, digest_part), note_key(digest, note)
            entry: ListedEntry | None = None
            for lang, (entries, items) in zip(LANGS, listed, strict=True):
                when = of_key(state_key, lang)
                if entry is None or entry.updated != when:  # the same in both, most often
                    entry = ListedEntry(ref, digest.source, digest.key, position, note, when)
                entries.append(entry)
                items.append(item(part, lang, when))
    by_lang = list(zip(LANGS, listed, strict=True))
    # Each document with the other language's of the same notes: the renderer that reads their
    # digests again for their text (feeds.renderer) reads them once for both.
    documents = [_documents(lang, None, everything, size) for lang, everything in by_lang]
    for same in zip(*documents, strict=True):
        yield from same
    for lang, (entries, items) in by_lang:
        for key, display in tags.items():
            numbers = members[key]
            tagged = ([entries[n] for n in numbers], [items[n] for n in numbers])
            yield from _documents(lang, display, tagged, size)


Listed = tuple[list[ListedEntry], list[str]]
"""A feed's entries, newest first, and the item key of each."""


def _documents(lang: Lang, tag: str | None, listed: Listed, size: int) -> Iterator[FeedJob]:
    entries, items = listed
    for (page, chunk), (_, keys) in zip(
        paginate(entries, size), paginate(items, size), strict=True
    ):
        yield FeedJob(lang, tag, page, tuple(chunk), tuple(keys))


def plan(
    archive: Archive[DigestHead],
    settings: SiteSettings,
    updates: Updates,
    keys: KeyParts,
    cache: Cache,
    present: Callable[[Output], bool],
    pool: Pool,
) -> Planned:
    """Key every job of the archive; hand the pool each one the cache lacks (it starts on it at
    once, while the rest are keyed). `present(output)`: OUT already holds it.

    A cached job is reused when every output it gave is in OUT already or its object in the
    store still hashes to its name; otherwise it renders again.
    """
    refs = tuple(d.ref for d in archive.digests)  # one per digest: KeyParts knows them by identity
    tags, tagged = _tagged(archive, refs, keys)
    pages_of = {key: tag_pages(notes, settings.tag_page_size) for key, notes in tagged.items()}
    # Rendered by a worker while this process plans the other jobs.
    latest = tuple(archive.digests[:LATEST_ON_HOME])
    search = len(shards(refs, settings.search_shard_size))
    site_wide = pool.submit(render, _site_job(refs, latest, tags, pages_of, search))
    known = cache.load_index()
    index: dict[str, Entry] = {}
    jobs: list[tuple[str, Job]] = []
    rendering: list[tuple[str, Pending[Rendered]]] = []
    items: set[str] = set()  # every feed item in use (feeds.fragments)
    for job in _jobs(archive, refs, settings, updates, tags, pages_of, keys):
        items.update(job.item_keys())
        key = keys.key(job)
        jobs.append((key, job))
        entry = known.get(key)
        if entry is not None and all(
            present(o) or cache.objects.verified(o.sha) for o in entry.outputs
        ):
            index[key] = entry
        else:
            rendering.append((key, pool.submit(render, job)))  # a worker starts on it now
    pool.flush()
    return Planned(jobs, index, rendering, site_wide, items)


def add_output(outputs: dict[str, Output], output: Output) -> None:
    """Add an output to a build's outputs; two at one path is an error (a bug in feeds)."""
    if output.path in outputs:
        raise FeedsError(f"two outputs would be written to {output.path}")
    outputs[output.path] = output


def _site_job(
    refs: tuple[DigestRef, ...],
    latest: tuple[DigestHead, ...],
    tags: dict[str, str],
    pages_of: dict[str, TagPageList],
    search_shards: int,
) -> SiteJob:
    newest = refs[0].date if refs else date(1970, 1, 1)
    counts = {key: pages[-1][0].total for key, pages in pages_of.items()}  # main page: last
    by_use = sorted(tags.items(), key=lambda kv: (-counts[kv[0]], kv[0]))
    sitemap: list[tuple[str, date]] = [(HOME_PATH, newest)]
    for lang in LANGS:
        sitemap += [(archive_page_path(lang), newest), (tag_index_path(lang), newest)]
        sitemap += [(digest_page_path(lang, r.id), r.date) for r in refs]
        for key, display in tags.items():
            for pages, notes in pages_of[key]:
                path = tag_page_path(lang, tag_slug(display), pages.number)
                sitemap.append((path, notes[0][0].date))  # newest first: when it last changed
    return SiteJob(
        refs,
        latest,
        tuple((d, counts[k]) for k, d in by_use),
        tuple(tags.values()),
        tuple(sitemap),
        search_shards,
    )
