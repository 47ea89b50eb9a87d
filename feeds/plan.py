"""Plan a build: every output of the archive, rendered or taken from the render cache.

The per-digest, per-tag and per-feed outputs come from jobs (feeds.jobs) keyed by a hash
of what they render from; the few site-wide files (landing page, archives, tag index,
404, sitemap, robots, OPML) depend on the whole archive and are rendered every time, by a
worker while this process plans the rest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

from .cache import Cache, Entry, Output
from .config import Settings
from .errors import FeedsError, Problem
from .feed import FeedEntry
from .jobs import (
    DigestJob,
    FeedJob,
    Job,
    JobKeys,
    Rendered,
    SiteJob,
    TagPageJob,
    Workers,
    job_salts,
    warnings_of,
)
from .model import LANGS, Archive, DigestRef, Note, NoteRef, tag_key
from .newsletter import check_mjml_templates
from .site import TagPages
from .state import Updates
from .templating import make_environment
from .urls import (
    HOME_PATH,
    archive_page_path,
    digest_page_path,
    tag_index_path,
    tag_page_path,
    tag_slug,
    tag_slugs,
)


@dataclass
class Planned:
    """Every output path with its content in the object store; the render index for next time."""

    outputs: dict[str, Output]
    index: dict[str, Entry]
    warnings: list[Problem]
    timings: dict[str, float]
    rendered: int
    reused: int
    workers: int


def worker_count(settings: Settings) -> int:
    """settings.workers, or one per core this process may use."""
    return settings.workers or len(os.sched_getaffinity(0))


TagList = list[tuple[DigestRef, NoteRef]]


def _tagged(
    archive: Archive, refs: tuple[DigestRef, ...]
) -> tuple[dict[str, str], dict[str, TagList]]:
    """Every tag (key -> display spelling, by key, as Archive.tags) and, per tag key, its notes
    newest first: one pass over the archive's tags, for both."""
    keys: dict[str, str] = {}  # spelling -> key: each spelling is folded once, not per note
    by_tag: dict[str, TagList] = {}
    for digest, ref in zip(archive.digests, refs, strict=True):
        for note in digest.notes:
            listed = (ref, note.ref)
            for tag in note.tags:
                key = keys.get(tag)
                if key is None:
                    key = keys[tag] = tag_key(tag)
                by_tag.setdefault(key, []).append(listed)
    display: dict[str, str] = {}
    for tag, key in keys.items():
        display.setdefault(key, tag)  # the archive spells each tag one way (parse._display_tags)
    return dict(sorted(display.items())), by_tag


def tag_pages(notes: TagList, size: int) -> list[tuple[TagPages, TagList]]:
    """A tag's pages: the main one and, past two pages' worth, numbered pages of older notes.

    Counted from the oldest note, page n holds the same `size` notes whatever is added later,
    so a new note changes the main page (which shows `size` to 2 x `size` - 1 notes) and, once
    every `size` notes, adds a page: older pages are never rendered again.
    """
    full = len(notes) // size if size else 0
    if full < 2:
        return [(TagPages(total=len(notes)), notes)]
    oldest_first = notes[::-1]
    older = full - 1  # pages of older notes; the newest full chunk stays on the main page
    pages = [
        (
            TagPages(number, number - 1 or None, number + 1 if number < older else None),
            oldest_first[(number - 1) * size : number * size][::-1],
        )
        for number in range(1, older + 1)
    ]
    pages.append((TagPages(None, older, None, len(notes)), oldest_first[older * size :][::-1]))
    return pages


TagPageList = list[tuple[TagPages, TagList]]


def _jobs(
    archive: Archive,
    refs: tuple[DigestRef, ...],
    settings: Settings,
    updates: Updates,
    tags: dict[str, str],
    pages_of: dict[str, TagPageList],
) -> Iterator[Job]:
    digests = archive.digests
    # Feeds first: they cost the most to render and the least to key, so the workers start on
    # them while this process keys the rest.
    limit = settings.feed_limit or None
    newest: list[FeedEntry] = []
    tagged: dict[str, list[FeedEntry]] = {key: [] for key in tags}
    key_of = {display: key for key, display in tags.items()}  # the archive's one spelling each
    for digest, ref in zip(digests, refs, strict=True):
        for position, note in enumerate(digest.notes):
            keys = {key_of.get(tag) or tag_key(tag): None for tag in note.tags}
            wanted = [key for key in keys if limit is None or len(tagged[key]) < limit]
            if wanted or limit is None or len(newest) < limit:
                entry = FeedEntry(ref, position, note, updates.of(digest, note))
                if limit is None or len(newest) < limit:
                    newest.append(entry)
                for found in wanted:
                    tagged[found].append(entry)
    for lang in LANGS:
        yield FeedJob(lang, None, tuple(newest))
        for key, display in tags.items():
            yield FeedJob(lang, display, tuple(tagged[key]))

    for index, digest in enumerate(digests):
        newer = refs[index - 1] if index > 0 else None
        older = refs[index + 1] if index + 1 < len(refs) else None
        yield DigestJob(digest, newer, older)

    for key, display in tags.items():
        for pages, notes in pages_of[key]:
            yield TagPageJob(display, tuple(notes), pages)


def plan(
    archive: Archive,
    settings: Settings,
    updates: Updates,
    cache: Cache,
    salt: str,
    note_hash: Callable[[Note], str],
    present: Callable[[Output], bool],
    workers: Workers,
    progress: Callable[[str, int], None] | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> Planned:
    """Every output of the build, in the object store. `present(output)`: OUT already holds it.

    A cached job is reused when every output it gave is in OUT already or its object in the
    store still hashes to its name; otherwise it renders again. `meanwhile` runs once every
    job is handed out, while the workers render.
    """
    env = make_environment(settings.templates_dir)
    check_mjml_templates(env)
    refs = tuple(d.ref for d in archive.digests)  # one per digest: JobKeys knows them by identity
    tags, tagged = _tagged(archive, refs)
    tag_slugs(tags.values())  # every tag has a path of its own, or the build stops here
    pages_of = {key: tag_pages(notes, settings.tag_page_size) for key, notes in tagged.items()}

    # Rendered by a worker while this process plans the other jobs.
    site_wide = workers.start(_site_job(refs, tags, pages_of))
    start = time.perf_counter()
    known = cache.load_index()
    index: dict[str, Entry] = {}
    jobs: list[tuple[str, Job]] = []
    misses: list[tuple[str, Callable[[], Rendered]]] = []
    job_key = JobKeys(job_salts(salt, env), note_hash)
    for job in _jobs(archive, refs, settings, updates, tags, pages_of):
        key = job_key(job)
        jobs.append((key, job))
        entry = known.get(key)
        if entry is not None and all(
            present(o) or cache.objects.verified(o.sha) for o in entry.outputs
        ):
            index[key] = entry
        else:
            index[key] = Entry(())  # placeholder keeps the plan's order
            misses.append((key, workers.start(job)))  # a worker starts on it now
    workers.flush()
    del job_key, known  # every note's key part, the last index: free while the workers render
    timings = {"plan": time.perf_counter() - start}
    if meanwhile is not None:
        meanwhile()

    for done, (key, rendered) in enumerate(misses, 1):
        result = rendered()
        index[key] = result.entry
        for stage, seconds in result.seconds.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
        if progress is not None and done % 50 == 0:
            progress("rendering", done)

    outputs: dict[str, Output] = {}
    for entry in index.values():
        for output in entry.outputs:
            _add(outputs, output)
    site = site_wide()
    for output in site.entry.outputs:
        _add(outputs, output)
    for stage, seconds in site.seconds.items():
        timings[stage] = timings.get(stage, 0.0) + seconds
    return Planned(
        outputs,
        index,
        [w for key, job in jobs for w in warnings_of(job, index[key])],
        timings,
        rendered=len(misses),
        reused=len(index) - len(misses),
        workers=workers.used,
    )


def _add(outputs: dict[str, Output], output: Output) -> None:
    if output.path in outputs:
        raise FeedsError(f"two outputs would be written to {output.path}")
    outputs[output.path] = output


def _site_job(
    refs: tuple[DigestRef, ...], tags: dict[str, str], pages_of: dict[str, TagPageList]
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
        refs, tuple((d, counts[k]) for k, d in by_use), tuple(tags.values()), tuple(sitemap)
    )
