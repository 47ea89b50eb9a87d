"""What a feed holds, before any format writes it: its documents (Channel) and their items
(Item), for the feeds of notes (a language, a tag in it) and the feed of digests.

No feedgen here: feeds.feed writes these as RSS, Atom and JSON Feed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import jinja2

from .config import SiteSettings
from .i18n import TEXT, format_digest_date
from .model import Digest, DigestRef, Lang, Note, Page
from .templating import render
from .urls import (
    FEED_FORMATS,
    FeedFormat,
    Urls,
    archive_page_path,
    digest_feed_path,
    digest_page_path,
    feed_path,
    tag_page_path,
    tag_slug,
)
from .views import NoteView, note_views

ITEM_TEMPLATE = "feed_item.html"
"""The HTML content of one note's feed item."""
DIGEST_ITEM_TEMPLATE = "feed_digest.html"
"""The HTML content of one digest's feed item: every note, as the newsletter shows them."""


@dataclass(frozen=True)
class Item:
    """One item of a feed, as every format writes it."""

    id: str
    url: str
    title: str
    content_html: str
    summary: str
    published: datetime
    updated: datetime
    tags: tuple[str, ...]
    external_url: str | None = None  # the paper the note is about


@dataclass(frozen=True)
class Channel:
    """One document of a feed: what it is, where it is, and where its neighbours are."""

    lang: Lang
    title: str
    description: str
    page_url: str  # the web page the feed follows
    urls: dict[FeedFormat, str]  # this document, per format
    paths: dict[FeedFormat, str]
    current: dict[FeedFormat, str]  # the subscription document, per format
    older: dict[FeedFormat, str] | None = None  # prev-archive
    newer: dict[FeedFormat, str] | None = None  # next-archive
    archive: bool = False  # an archive document (fh:archive)
    summaries: bool = False  # its items carry no content, only their summary (feed.summarised)
    links: dict[str, str] = field(default_factory=dict)  # more feed-level links, by rel


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """A note as a feed holds it: where it appeared, and when it last changed in the feed's
    language (None: never)."""

    digest: DigestRef
    index: int
    note: Note
    updated: datetime | None

    def dates(self, settings: SiteSettings) -> tuple[datetime, datetime]:
        """When it was published, and when it last changed in the feed's language."""
        return entry_dates(self.digest, self.index, self.updated, settings)


def entry_dates(
    digest: DigestRef, index: int, updated: datetime | None, settings: SiteSettings
) -> tuple[datetime, datetime]:
    """When the note at `index` of a digest was published, and when it last changed in a
    feed's language (`updated`; None: never)."""
    published = digest.note_published(index, settings.tz)
    return published, updated or published


def _item_html(view: NoteView, lang: Lang, env: jinja2.Environment) -> str:
    note = view.note
    return render(
        env,
        ITEM_TEMPLATE,
        item=view,
        note=note,
        commentary=view.commentary,
        lang=lang,
        text=TEXT[lang],
        tag_links=view.tag_links,
    ).strip()


def note_item(
    entry: FeedEntry, lang: Lang, settings: SiteSettings, env: jinja2.Environment
) -> Item:
    """A note as an item of a feed in one language."""
    view = note_views(settings)(entry.digest.id, entry.note, lang)
    note = view.note
    published, updated = entry.dates(settings)
    return Item(
        id=view.url,
        url=view.url,
        title=note.title,
        content_html=_item_html(view, lang, env),
        summary=(view.commentary or note.abstract or (note.title,))[0],
        published=published,
        updated=updated,
        tags=note.tags,
        external_url=view.paper_url,
    )


def digest_item(
    digest: Digest,
    lang: Lang,
    updated: datetime | None,
    settings: SiteSettings,
    env: jinja2.Environment,
) -> Item:
    """A digest as one item of the digest feed of a language: its page is the id and link,
    its content every note (as web-safe HTML), dated like the digest; `updated`: when a note
    of it last changed in this language (None: never)."""
    urls = Urls(settings.base_url)
    url = urls.of(digest_page_path(lang, digest.id))
    views = note_views(settings)
    taken = frozenset(note.slug for note in digest.notes)
    notes = [views(digest.id, note, lang, taken) for note in digest.notes]
    content = render(
        env,
        DIGEST_ITEM_TEMPLATE,
        notes=[(view, _item_html(view, lang, env)) for view in notes],
        lang=lang,
        text=TEXT[lang],
    )
    published = digest.ref.note_published(0, settings.tz)
    label = format_digest_date(digest.date, digest.part, lang)
    titles = [view.note.title for view in notes]
    tags = tuple(dict.fromkeys(tag for view in notes for tag in view.note.tags))
    return Item(
        id=url,
        url=url,
        title=f"{settings.title[lang]} · {label}",
        content_html=content.strip(),
        summary=TEXT[lang]["notes_count"].format(n=len(notes)) + ": " + "; ".join(titles),
        published=published,
        updated=max(updated, published) if updated else published,
        tags=tags,
    )


def note_channel(lang: Lang, tag: str | None, page: Page, settings: SiteSettings) -> Channel:
    """A document of the feed of one language (tag None) or of one tag in it."""
    urls = Urls(settings.base_url)
    slug = tag_slug(tag) if tag is not None else None
    if tag is None:
        title, description = settings.title[lang], settings.description[lang]
        web = archive_page_path(lang)
    else:
        title = TEXT[lang]["tag_feed_title"].format(title=settings.title[lang], tag=tag)
        description = TEXT[lang]["tag_feed_description"].format(tag=tag)
        web = tag_page_path(lang, slug or "")

    def at(number: int | None) -> dict[FeedFormat, str]:
        return {fmt: feed_path(lang, slug, fmt, number) for fmt in FEED_FORMATS}

    def linked(number: int | None) -> dict[FeedFormat, str] | None:
        return None if number is None else {f: urls.of(p) for f, p in at(number).items()}

    paths = at(page.number)
    return Channel(
        lang,
        title,
        description,
        urls.of(web),
        {fmt: urls.of(path) for fmt, path in paths.items()},
        paths,
        {fmt: urls.of(path) for fmt, path in at(None).items()},
        linked(page.older),
        linked(page.newer) if page.number is not None else None,
        archive=page.number is not None,
        # A tag feed's archives list notes whose whole text the language feed's archives
        # already hold: with it, they were over a third of a site's bytes (README, "Feeds").
        summaries=(
            tag is not None and page.number is not None and settings.tag_archive_items == "summary"
        ),
    )


def digest_channel(lang: Lang, settings: SiteSettings) -> Channel:
    """The feed of a language with one item per digest (its newest `digest_feed_limit`; the
    whole history is in the note feed's archives)."""
    urls = Urls(settings.base_url)
    paths = {fmt: digest_feed_path(lang, fmt) for fmt in FEED_FORMATS}
    own = {fmt: urls.of(path) for fmt, path in paths.items()}
    return Channel(
        lang,
        TEXT[lang]["digest_feed_title"].format(title=settings.title[lang]),
        TEXT[lang]["digest_feed_description"],
        urls.of(archive_page_path(lang)),
        own,
        paths,
        own,
    )
