"""RSS 2.0, Atom 1.0 and JSON Feed 1.1 per language and per tag, and the OPML list of them all.

The only module that imports feedgen.
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from xml.etree import ElementTree

import jinja2

from . import __version__
from .config import SiteSettings
from .i18n import TEXT
from .model import LANGS, DigestRef, Lang, Note, clean_text
from .templating import render
from .urls import (
    FEED_FORMATS,
    FEED_MEDIA_TYPES,
    FeedFormat,
    Urls,
    archive_page_path,
    lang_feed_path,
    tag_feed_path,
    tag_page_path,
    tag_slug,
)
from .views import note_view

if TYPE_CHECKING:
    from feedgen.feed import FeedGenerator

_ATOM_NS = "http://www.w3.org/2005/Atom"


ITEM_TEMPLATE = "feed_item.html"
"""The HTML content of one feed item."""


@dataclass(frozen=True)
class Item:
    """One note as a feed item in one language."""

    id: str
    url: str
    title: str
    content_html: str
    summary: str
    published: datetime
    updated: datetime
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Channel:
    lang: Lang
    title: str
    description: str
    page_url: str
    self_urls: dict[FeedFormat, str]
    paths: dict[FeedFormat, str]


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """A note as a feed holds it: where it appeared, and when it last changed (None: never)."""

    digest: DigestRef
    index: int
    note: Note
    updated: datetime | None


def _item(entry: FeedEntry, lang: Lang, settings: SiteSettings, env: jinja2.Environment) -> Item:
    view = note_view(entry.digest.id, entry.note, lang, Urls(settings.base_url))
    note, commentary, url = view.note, view.commentary, view.url
    content = render(
        env,
        ITEM_TEMPLATE,
        note=note,
        commentary=commentary,
        lang=lang,
        text=TEXT[lang],
        tag_links=view.tag_links,
    )
    published = entry.digest.note_published(entry.index, settings.tz)
    summary = (commentary or note.abstract or (note.title,))[0]
    return Item(
        id=url,
        url=url,
        title=note.title,
        content_html=content.strip(),
        summary=summary,
        published=published,
        updated=entry.updated or published,
        tags=note.tags,
    )


def _feedgen(channel: Channel, items: list[Item], settings: SiteSettings) -> FeedGenerator:
    fg = import_feedgen()[0]()
    fg.id(channel.self_urls["atom"])
    fg.title(clean_text(channel.title))
    fg.subtitle(clean_text(channel.description))
    fg.description(clean_text(channel.description))
    fg.language(channel.lang)
    fg.author({"name": clean_text(settings.author_name), "email": settings.author_email})
    fg.managingEditor(f"{settings.author_email} ({clean_text(settings.author_name)})")
    fg.generator("feeds", version=__version__)
    fg.link(href=channel.page_url, rel="alternate", type="text/html")
    if settings.websub_hub:
        fg.link(href=settings.websub_hub, rel="hub")
    newest = max((i.updated for i in items), default=None)
    if newest is not None:
        fg.updated(newest)
    for item in items:
        fe = fg.add_entry(order="append")
        fe.id(item.id)
        fe.guid(item.id, permalink=True)
        fe.title(item.title)
        fe.link(href=item.url, rel="alternate", type="text/html")
        fe.published(item.published)
        fe.updated(item.updated)
        fe.summary(item.summary)  # Atom: text
        fe.description(html.escape(item.summary, quote=False))  # RSS readers take it as HTML
        fe.content(item.content_html, type="html")
        for tag in item.tags:
            fe.category(term=tag)
    return fg


def _serialise(
    channel: Channel, items: list[Item], settings: SiteSettings
) -> Iterator[tuple[str, bytes]]:
    fg = _feedgen(channel, items, settings)
    fg.link(href=channel.self_urls["atom"], rel="self", type=FEED_MEDIA_TYPES["atom"])
    if not items:
        fg.updated(datetime.fromtimestamp(0, settings.tz))
    yield channel.paths["atom"], fg.atom_str(pretty=True, encoding="UTF-8")
    fg.link(href=channel.self_urls["rss"], rel="self", type=FEED_MEDIA_TYPES["rss"], replace=True)
    fg.link(href=channel.page_url, rel="alternate", type="text/html")
    if settings.websub_hub:
        fg.register_extension("websub", _websub_class(settings.websub_hub), atom=False, rss=True)
    yield channel.paths["rss"], fg.rss_str(pretty=True, encoding="UTF-8")
    yield channel.paths["json"], _json_feed(channel, items, settings)


@functools.cache
def import_feedgen() -> tuple[type[FeedGenerator], type]:
    """feedgen's generator, and an extension that writes the WebSub hub link into RSS.

    Imported when first needed: a build's main process plans while workers render, and
    importing feedgen (with lxml and dateutil) would add 20-35 ms to its start.
    """
    from feedgen.ext.base import BaseExtension
    from feedgen.feed import FeedGenerator

    class WebSubRss(BaseExtension):  # type: ignore[misc]  # feedgen is untyped
        """feedgen writes only the self atom:link in RSS; the hub link goes in the same way."""

        hub: str = ""

        def extend_ns(self) -> dict[str, str]:
            return {"atom": _ATOM_NS}

        def extend_rss(self, feed):  # type: ignore[no-untyped-def]
            channel = feed[0]
            channel.append(
                channel.makeelement(f"{{{_ATOM_NS}}}link", {"rel": "hub", "href": self.hub})
            )
            return feed

    return FeedGenerator, WebSubRss


def _websub_class(hub: str) -> type:
    return type("WebSubRss", (import_feedgen()[1],), {"hub": hub})


def _json_feed(channel: Channel, items: list[Item], settings: SiteSettings) -> bytes:
    document: dict[str, object] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": clean_text(channel.title),
        "home_page_url": channel.page_url,
        "feed_url": channel.self_urls["json"],
        "description": clean_text(channel.description),
        "language": channel.lang,
        "authors": [
            {"name": clean_text(settings.author_name), "url": f"mailto:{settings.author_email}"}
        ],
    }
    if settings.websub_hub:
        document["hubs"] = [{"type": "WebSub", "url": settings.websub_hub}]
    items_json = [
        json.dumps(
            {
                "id": item.id,
                "url": item.url,
                "title": item.title,
                "content_html": item.content_html,
                "summary": item.summary,
                "date_published": item.published.isoformat(),
                "date_modified": item.updated.isoformat(),
                "tags": list(item.tags),
                "language": channel.lang,
            },
            ensure_ascii=False,
        )
        for item in items
    ]
    # One item per line: readable and diffable, and each line comes from json's C encoder
    # (indenting everything takes the pure-Python one, a quarter of a feed's render time).
    head = json.dumps(document, ensure_ascii=False, indent=2)[: -len("\n}")]
    listed = "[\n    " + ",\n    ".join(items_json) + "\n  ]" if items_json else "[]"
    return f'{head},\n  "items": {listed}\n}}\n'.encode()


def render_feed(
    lang: Lang,
    tag: str | None,
    entries: Sequence[FeedEntry],
    settings: SiteSettings,
    env: jinja2.Environment,
) -> list[tuple[str, bytes]]:
    """The Atom, RSS and JSON Feed files of one language (tag None) or one tag in it."""
    urls = Urls(settings.base_url)
    if tag is None:
        paths = {fmt: lang_feed_path(lang, fmt) for fmt in FEED_FORMATS}
        title, description = settings.title[lang], settings.description[lang]
        page = archive_page_path(lang)
    else:
        slug = tag_slug(tag)
        paths = {fmt: tag_feed_path(lang, slug, fmt) for fmt in FEED_FORMATS}
        title = TEXT[lang]["tag_feed_title"].format(title=settings.title[lang], tag=tag)
        description = TEXT[lang]["tag_feed_description"].format(tag=tag)
        page = tag_page_path(lang, slug)
    channel = Channel(
        lang,
        title,
        description,
        urls.of(page),
        {fmt: urls.of(p) for fmt, p in paths.items()},
        paths,
    )
    items = [_item(entry, lang, settings, env) for entry in entries]
    return list(_serialise(channel, items, settings))


def render_opml(tags: Sequence[str], settings: SiteSettings) -> bytes:
    """An OPML 2.0 subscription list: per language, the language feed, then a folder of tag feeds."""
    urls = Urls(settings.base_url)
    opml = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(opml, "head")
    ElementTree.SubElement(head, "title").text = clean_text(" / ".join(settings.title.values()))
    ElementTree.SubElement(head, "ownerName").text = clean_text(settings.author_name)
    body = ElementTree.SubElement(opml, "body")
    for lang in LANGS:
        group = ElementTree.SubElement(body, "outline", text=TEXT[lang]["language_name"])
        _outline(
            group,
            settings.title[lang],
            urls.of(lang_feed_path(lang, "atom")),
            urls.of(archive_page_path(lang)),
            lang,
        )
        folder = ElementTree.SubElement(group, "outline", text=TEXT[lang]["tags"])
        for display in tags:
            slug = tag_slug(display)
            title = TEXT[lang]["tag_feed_title"].format(title=settings.title[lang], tag=display)
            _outline(
                folder,
                title,
                urls.of(tag_feed_path(lang, slug, "atom")),
                urls.of(tag_page_path(lang, slug)),
                lang,
            )
    ElementTree.indent(opml)
    data: bytes = ElementTree.tostring(opml, encoding="UTF-8", xml_declaration=True)
    return data + b"\n"


def _outline(
    parent: ElementTree.Element, title: str, xml_url: str, html_url: str, lang: Lang
) -> None:
    ElementTree.SubElement(
        parent,
        "outline",
        type="rss",
        text=clean_text(title),
        title=clean_text(title),
        xmlUrl=xml_url,
        htmlUrl=html_url,
        language=lang,
    )
