"""Units of rendering work: each kind declares the templates it renders, its cache key and how
it renders its outputs, from exactly the data it carries.

A job holds no reference to the archive, so it can run in any process, and its outputs
depend on nothing but its fields, the site settings and its templates: the hash of those
(its key) names them in the render cache. It carries digests as heads (model.DigestHead,
whose notes' hashes are in its key); where it renders, their text is read again from their
files, which must hold the bytes the build planned from (feeds.renderer).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Protocol

import jinja2

from .cache import Entry
from .channels import (
    DIGEST_ITEM_TEMPLATE,
    ITEM_TEMPLATE,
    digest_channel,
    digest_item,
    entry_dates,
    note_channel,
)
from .config import SiteSettings
from .errors import Problem
from .feed import render_feed, render_items
from .fragments import Fragment
from .model import LANGS, Digest, DigestHead, DigestRef, Lang, NoteHead, NoteRef, Page
from .newsletter import MJML_TEMPLATE, TEXT_TEMPLATE, render_newsletter
from .opml import render_opml
from .site import DIGEST_TEMPLATE, TAG_TEMPLATE, SiteRenderer
from .templating import asset, templates_hash
from .urls import (
    HOME_PATH,
    ICON_FILES,
    NOT_FOUND_PATH,
    OPML_PATH,
    ROBOTS_PATH,
    SITEMAP_PATH,
    archive_page_path,
    digest_page_path,
    search_page_path,
    tag_index_path,
    tag_page_path,
    tag_slug,
)

LATEST_ON_HOME = 10

Files = list[tuple[str, bytes]]


@dataclass
class Rendered:
    """A job's outputs, stored in the object store, and where its time went."""

    entry: Entry
    seconds: dict[str, float] = field(default_factory=dict)


class KeyParts:
    """The parts of job keys shared between jobs, made once per build: a digest or note shows
    up in many jobs (a note in its tag pages and in several feeds, per language), so its part
    is found again by identity."""

    def __init__(self, salt: str, env: jinja2.Environment):
        # Per kind of job: the salt (code, libraries, site settings) and the templates it
        # renders, so that editing one template renders again only what uses it.
        self.salts = {
            kind: hashlib.sha256(f"{salt}\n{templates_hash(env, kind.templates)}".encode())
            for kind in KINDS
        }
        self._item_salt = self.salts[FeedJob].hexdigest()[:16]
        self._parts: dict[int, tuple[object, str]] = {}  # id -> (the object, to pin the id; part)

    def part(self, thing: Any, make: Callable[[Any], str]) -> str:
        found = self._parts.get(id(thing))
        if found is None or found[0] is not thing:
            found = self._parts[id(thing)] = (thing, make(thing))
        return found[1]

    def parts(self, things: Sequence[Any], make: Callable[[Any], str]) -> list[str]:
        known = self._parts  # inlined lookups: this runs for every note of every tag page and feed
        return [
            found[1]
            if (found := known.get(id(thing))) is not None and found[0] is thing
            else self.part(thing, make)
            for thing in things
        ]

    def digest(self, ref: DigestRef | None) -> str:
        return "-" if ref is None else self.part(ref, _ref)

    def listed(self, listed: tuple[DigestRef, NoteRef], digest_part: str) -> None:
        """Make the part of a note as tag pages list it (`_listed`) ahead, in one pass over
        the archive: `digest_part` is its digest's (`digest`)."""
        self._parts[id(listed)] = (listed, _listed_part(digest_part, listed[1]))

    def note_part(self, note: NoteHead, position: int, digest_part: str) -> str:
        """What a note's feed item depends on in every language: the digest (`digest`), the
        note's place and hash."""
        return f"{digest_part} {position} {note.slug} {note.hash}"

    def item(self, note_part: str, lang: Lang, updated: datetime | None) -> str:
        """An entry's item key in the item store (feeds.fragments): everything its item
        depends on (the salt of feeds, `note_part`, and when it changed in the language). The
        same for every feed that lists the note. A hash of it: a quarter-million of them at
        10,000 digests are held, hashed into feed keys and stored, at 32 characters each."""
        made = f"{self._item_salt} {lang} {note_part} {updated}".encode()
        return hashlib.blake2b(made, digest_size=16).hexdigest()

    def key(self, job: Job) -> str:
        """The job's render key: a hash of everything its outputs depend on."""
        digest = self.salts[type(job)].copy()
        # Slugs, ids and tags hold no whitespace or newlines, so joining them is unambiguous.
        digest.update("\n".join(["", *job.key_parts(self)]).encode())
        return digest.hexdigest()


def _ref(ref: DigestRef) -> str:
    return f"{ref.id} {ref.date} {ref.part} {ref.size}"


class RenderContext(Protocol):
    """What jobs render with (feeds.renderer.Renderer): the settings, the templates, and the
    text of the digests they carry as heads."""

    settings: SiteSettings
    templates_dir: str | None
    env: jinja2.Environment
    site: SiteRenderer

    def digest(self, head: DigestHead) -> Digest:
        """The digest with its text, as the build planned it."""
        ...

    def items_of(
        self, lang: Lang, entries: Sequence[ListedEntry], keys: Sequence[str]
    ) -> list[Fragment]:
        """The entries' feed items, rendered where the item store lacks them."""
        ...


class Job:
    """A kind of rendering work (see the subclasses)."""

    __slots__ = ()
    templates: ClassVar[tuple[str, ...]] = ()
    """The templates it renders (with those they extend, include or import)."""

    def key_parts(self, keys: KeyParts) -> list[str]:
        """What its outputs depend on besides the salt of its kind."""
        raise NotImplementedError

    def render(self, renderer: RenderContext) -> tuple[Files, list[Problem], dict[str, float]]:
        """Its outputs, the warnings rendering gave, and seconds per stage."""
        raise NotImplementedError

    @property
    def source(self) -> str | None:
        """The digest file its warnings are about, if any (stored without it: it may move)."""
        return None

    def item_keys(self) -> tuple[str, ...]:
        """The feed items it lists, by key in the item store (feeds.fragments)."""
        return ()


@dataclass(frozen=True, slots=True)
class DigestJob(Job):
    """A digest's web page and newsletters, in both languages."""

    templates: ClassVar[tuple[str, ...]] = (DIGEST_TEMPLATE, MJML_TEMPLATE, TEXT_TEMPLATE)
    digest: DigestHead
    newer: DigestRef | None
    older: DigestRef | None

    def key_parts(self, keys: KeyParts) -> list[str]:
        # Not the digest's source: moving the project must not invalidate the cache.
        d = self.digest
        parts = ["digest", _ref(d.ref), keys.digest(self.newer), keys.digest(self.older)]
        return parts + [f"{n.slug} {n.hash}" for n in d.notes]

    def render(self, renderer: RenderContext) -> tuple[Files, list[Problem], dict[str, float]]:
        start = time.perf_counter()
        digest = renderer.digest(self.digest)
        outputs: Files = []
        warnings: list[Problem] = []
        for lang in LANGS:
            page = renderer.site.digest_page(digest, lang, self.newer, self.older)
            outputs.append((digest_page_path(lang, digest.id), page))
        middle = time.perf_counter()
        for lang in LANGS:
            mail, found = render_newsletter(digest, lang, renderer.settings, renderer.env)
            outputs += mail
            warnings += found
        seconds = {"pages": middle - start, "newsletters": time.perf_counter() - middle}
        return outputs, warnings, seconds

    @property
    def source(self) -> str | None:
        return self.digest.source


@dataclass(frozen=True, slots=True)
class ListedEntry:
    """A note as a feed job lists it: where it appeared, its head, and when it last changed
    in the feed's language (None: never). Its text is read from its digest file (`source`,
    whose bytes have the parse key `key`) only if its item must be rendered."""

    digest: DigestRef
    source: str
    key: str
    index: int
    note: NoteHead
    updated: datetime | None

    def dates(self, settings: SiteSettings) -> tuple[datetime, datetime]:
        """When it was published, and when it last changed in the feed's language."""
        return entry_dates(self.digest, self.index, self.updated, settings)


@dataclass(frozen=True, slots=True)
class TagPageJob(Job):
    """One page of a tag, in both languages: its notes, newest first."""

    templates: ClassVar[tuple[str, ...]] = (TAG_TEMPLATE,)
    tag: str
    notes: tuple[tuple[DigestRef, NoteRef], ...]
    pages: Page

    def key_parts(self, keys: KeyParts) -> list[str]:
        return ["tag", self.tag, repr(self.pages), *keys.parts(self.notes, _listed(keys))]

    def render(self, renderer: RenderContext) -> tuple[Files, list[Problem], dict[str, float]]:
        start = time.perf_counter()
        outputs = [
            (
                tag_page_path(lang, tag_slug(self.tag), self.pages.number),
                renderer.site.tag_page(lang, self.tag, self.notes, self.pages),
            )
            for lang in LANGS
        ]
        return outputs, [], {"pages": time.perf_counter() - start}


def _listed(keys: KeyParts) -> Callable[[tuple[DigestRef, NoteRef]], str]:
    def part(listed: tuple[DigestRef, NoteRef]) -> str:
        return _listed_part(keys.digest(listed[0]), listed[1])

    return part


def _listed_part(digest_part: str, note: NoteRef) -> str:
    # A tag page lists titles and authors only: a note's text can change without it.
    return f"{digest_part} {note.slug}\0{note.title}\0{', '.join(note.authors)}"


@dataclass(frozen=True, slots=True)
class FeedJob(Job):
    """The three feed files of one language (tag None) or of one tag in it."""

    templates: ClassVar[tuple[str, ...]] = (ITEM_TEMPLATE,)
    lang: Lang
    tag: str | None
    page: Page
    entries: tuple[ListedEntry, ...]
    items: tuple[str, ...]  # each entry's item key (KeyParts.items)

    def key_parts(self, keys: KeyParts) -> list[str]:
        return ["feed", self.lang, self.tag or "-", repr(self.page), *self.items]

    def item_keys(self) -> tuple[str, ...]:
        return self.items

    def render(self, renderer: RenderContext) -> tuple[Files, list[Problem], dict[str, float]]:
        start = time.perf_counter()
        settings = renderer.settings
        channel = note_channel(self.lang, self.tag, self.page, settings)
        items = renderer.items_of(self.lang, self.entries, self.items)
        updated = max((entry.dates(settings)[1] for entry in self.entries), default=None)
        outputs = render_feed(channel, items, updated, settings)
        return outputs, [], {"feeds": time.perf_counter() - start}


@dataclass(frozen=True, slots=True)
class DigestFeedJob(Job):
    """The three files of the feed of one language with one item per digest, its newest."""

    templates: ClassVar[tuple[str, ...]] = (ITEM_TEMPLATE, DIGEST_ITEM_TEMPLATE)
    lang: Lang
    digests: tuple[DigestHead, ...]
    updated: tuple[datetime | None, ...]  # when a note of each last changed in the language

    def key_parts(self, keys: KeyParts) -> list[str]:
        parts = ["digests", self.lang]
        for digest, updated in zip(self.digests, self.updated, strict=True):
            parts.append(f"{_ref(digest.ref)} {updated}")
            parts += [f"{n.slug} {n.hash}" for n in digest.notes]
        return parts

    def render(self, renderer: RenderContext) -> tuple[Files, list[Problem], dict[str, float]]:
        start = time.perf_counter()
        settings, env = renderer.settings, renderer.env
        items = [
            digest_item(renderer.digest(digest), self.lang, updated, settings, env)
            for digest, updated in zip(self.digests, self.updated, strict=True)
        ]
        channel = digest_channel(self.lang, settings)
        newest = max((item.updated for item in items), default=None)
        outputs = render_feed(channel, render_items(items, self.lang), newest, settings)
        return outputs, [], {"feeds": time.perf_counter() - start}


@dataclass(frozen=True, slots=True)
class SiteJob(Job):
    """The site-wide files: landing page, archives, tag indexes, 404, sitemap, robots, OPML.

    They depend on the whole archive, so they render every build, beside the other jobs.
    """

    refs: tuple[DigestRef, ...]  # every digest, newest first
    latest: tuple[DigestHead, ...]  # the newest, shown on the landing page
    tag_counts: tuple[tuple[str, int], ...]  # display spelling and notes, most used first
    tags: tuple[str, ...]  # display spellings, by key
    sitemap: tuple[tuple[str, date], ...]  # path and when it last changed
    search_shards: int  # search indexes of the digest pages (feeds.search)

    def key_parts(self, keys: KeyParts) -> list[str]:
        raise TypeError("site-wide files have no key: they render every build")

    def render(self, renderer: RenderContext) -> tuple[Files, list[Problem], dict[str, float]]:
        start = time.perf_counter()
        site = renderer.site
        outputs = [(HOME_PATH, site.home([renderer.digest(d) for d in self.latest]))]
        outputs += [(name, asset(renderer.templates_dir, name)) for name in ICON_FILES]
        for lang in LANGS:
            outputs.append((search_page_path(lang), site.search_page(lang, self.search_shards)))
            outputs.append((archive_page_path(lang), site.archive_page(lang, self.refs)))
            outputs.append((tag_index_path(lang), site.tag_index(lang, self.tag_counts)))
        outputs.append((NOT_FOUND_PATH, site.not_found()))
        outputs.append((SITEMAP_PATH, site.sitemap(self.sitemap)))
        outputs.append((ROBOTS_PATH, site.robots()))
        outputs.append((OPML_PATH, render_opml(self.tags, renderer.settings)))
        return outputs, [], {"pages": time.perf_counter() - start}


KINDS: tuple[type[Job], ...] = (DigestJob, TagPageJob, FeedJob, DigestFeedJob)
"""The kinds of job with a render key."""


def warnings_of(job: Job, entry: Entry) -> list[Problem]:
    """The warnings a job gave, naming its digest file where it is now."""
    return [
        Problem(w.message, job.source if w.source is None else w.source, w.line, "warning")
        for w in entry.warnings
    ]
