"""RSS 2.0, Atom 1.0 and JSON Feed 1.1 documents of a feed (feeds.channels says what is in them).

A feed's subscription document holds its newest items and links, as RFC 5005 says, to
archive documents of older ones (fh:archive, current, prev-archive, next-archive; as
`atom:link` in RSS, `next_url` in JSON Feed). The only module that imports feedgen.

Items are rendered apart from the documents that list them (`render_items`: each item as
feedgen writes it inside a document, as a Fragment) and spliced into each document
(`render_feed`), so that a note's item is rendered once however many feeds list it; the bytes
are those feedgen writes for the whole document (tests/test_feeds.py checks it).
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import __version__
from .channels import Channel, Item
from .config import SiteSettings
from .fragments import Fragment
from .model import Lang, clean_text
from .urls import FEED_MEDIA_TYPES, ICON_LARGE, ICON_SMALL, FeedFormat, Urls

if TYPE_CHECKING:
    from feedgen.feed import FeedGenerator

_ATOM_NS = "http://www.w3.org/2005/Atom"
_HISTORY_NS = "http://purl.org/syndication/history/1.0"


def render_items(items: Sequence[Item], lang: Lang) -> list[Fragment]:
    """Each item as the documents of a feed in `lang` write it: feedgen writes them all in one
    document, which is cut at the items (text and attributes escape "<", so the markers that
    start an item cannot occur inside one)."""
    if not items:
        return []
    fg = _bare_feedgen()
    for item in items:
        _add_entry(fg, item)
    atom = _cut(fg.atom_str(pretty=True, encoding="UTF-8"), _ATOM_ITEM, _ATOM_END)
    rss = _cut(fg.rss_str(pretty=True, encoding="UTF-8"), _RSS_ITEM, _RSS_END)
    json_items = [json.dumps(_json_item(item, lang), ensure_ascii=False).encode() for item in items]
    return [Fragment(*formats) for formats in zip(atom, rss, json_items, strict=True)]


_ATOM_ITEM, _ATOM_END = b"  <entry>\n", b"</feed>\n"
_RSS_ITEM, _RSS_END = b"    <item>\n", b"  </channel>\n</rss>\n"


def _cut(document: bytes, start: bytes, end: bytes) -> list[bytes]:
    _, *items = document.split(start)
    assert items and items[-1].endswith(end), "feedgen wrote a document of another shape"
    items[-1] = items[-1][: -len(end)]
    return [start + item for item in items]


def _splice(document: bytes, end: bytes, items: Iterable[bytes]) -> bytes:
    assert document.endswith(end), "feedgen wrote a document of another shape"
    return b"".join((document[: -len(end)], *items, end))


def render_feed(
    channel: Channel, items: Sequence[Fragment], updated: datetime | None, settings: SiteSettings
) -> list[tuple[str, bytes]]:
    """The Atom, RSS and JSON Feed files of one document of a feed, holding these items
    (render_items); `updated`: when the newest of them changed (None: the document is empty)."""
    if channel.summaries:
        items = [summarised(item) for item in items]
    return list(_serialise(channel, items, updated, settings))


_ATOM_CONTENT = (
    (b'    <content type="html">', b"</content>\n"),
    (b'    <content type="html"/>', b"\n"),  # empty HTML (a template that wrote nothing)
    (b"    <content>", b"</content>\n"),  # feedgen's fallback to the description
)
_RSS_CONTENT = (
    (b"      <content:encoded>", b"</content:encoded>\n"),
    (b"      <content:encoded/>", b"\n"),
)
_JSON_CONTENT, _JSON_SUMMARY, _JSON_AFTER = (
    b'"content_html": ',
    b', "summary": ',
    b', "date_published"',
)


def summarised(item: Fragment) -> Fragment:
    """The item without its content: title, link, summary, tags and dates stay. Atom then
    needs the alternate link, which every item has (RFC 4287, 4.1.1); JSON Feed needs
    content_html or content_text, and gets the summary as content_text.

    Cut from the bytes as feedgen and `_json_item` write them (a parse and a new dump took
    ten times as long): the content is escaped text, which holds no "<", and the markers are
    not inside a JSON string, where every quote is escaped."""
    atom, rss, data = item
    start = data.index(_JSON_CONTENT)
    middle = data.index(_JSON_SUMMARY, start)
    summary = data[middle + len(_JSON_SUMMARY) : data.index(_JSON_AFTER, middle)]
    json_item = b"".join((data[:start], b'"content_text": ', summary, data[middle:]))
    return Fragment(_cut_out(atom, _ATOM_CONTENT), _cut_out(rss, _RSS_CONTENT), json_item)


def _cut_out(data: bytes, markers: tuple[tuple[bytes, bytes], ...]) -> bytes:
    for start, end in markers:
        begins = data.find(start)
        ends = data.find(end, begins) if begins >= 0 else -1
        if ends >= 0:
            return data[:begins] + data[ends + len(end) :]
    return data  # nothing of this shape to cut: the item keeps it (valid either way)


def _bare_feedgen() -> FeedGenerator:
    """A generator with what each format requires of a document, to write items in."""
    fg = import_feedgen()[0]()
    fg.id("-")
    fg.title("-")
    fg.description("-")
    fg.link(href="-", rel="alternate")
    fg.updated(datetime.fromtimestamp(0, UTC))
    feed_extension, paper_link = import_feedgen()[1:]
    fg.register_extension("paper", feed_extension, paper_link, atom=True, rss=False)
    return fg


def _feedgen(channel: Channel, updated: datetime | None, settings: SiteSettings) -> FeedGenerator:
    fg = import_feedgen()[0]()
    fg.id(channel.current["atom"])  # every document of a feed is the same feed
    fg.title(clean_text(channel.title))
    fg.subtitle(clean_text(channel.description))
    fg.description(clean_text(channel.description))
    fg.language(channel.lang)
    fg.author({"name": clean_text(settings.author_name), "email": settings.author_email})
    fg.managingEditor(f"{settings.author_email} ({clean_text(settings.author_name)})")
    fg.generator("feeds", version=__version__)
    fg.updated(updated if updated is not None else datetime.fromtimestamp(0, settings.tz))
    urls = Urls(settings.base_url)
    fg.icon(urls.of(ICON_SMALL))  # Atom: square
    fg.logo(urls.of(ICON_LARGE))
    # RSS: at most 144 pixels wide; its title and link must be the channel's.
    title = clean_text(channel.title)
    fg.image(urls.of(ICON_SMALL), title, channel.page_url, "144", "144")
    return fg


def _add_entry(fg: FeedGenerator, item: Item) -> None:
    fe = fg.add_entry(order="append")
    fe.id(item.id)
    fe.guid(item.id, permalink=True)
    fe.title(item.title)
    fe.link(href=item.url, rel="alternate", type="text/html")
    fe.paper.href = item.external_url
    fe.published(item.published)
    fe.updated(item.updated)
    fe.summary(item.summary)  # Atom: text
    fe.description(html.escape(item.summary, quote=False))  # RSS readers take it as HTML
    fe.content(item.content_html, type="html")
    for tag in item.tags:
        fe.category(term=tag)


def _links(channel: Channel, fmt: FeedFormat, settings: SiteSettings) -> list[tuple[str, str]]:
    """The feed-level links of one format, (rel, href), self first."""
    found = [("self", channel.urls[fmt])]
    if channel.archive:
        found.append(("current", channel.current[fmt]))
    if channel.older:
        found.append(("prev-archive", channel.older[fmt]))
    if channel.newer:
        found.append(("next-archive", channel.newer[fmt]))
    if settings.websub_hub and not channel.archive:
        found.append(("hub", settings.websub_hub))
    return found + list(channel.links.items())


def _serialise(
    channel: Channel, items: Sequence[Fragment], updated: datetime | None, settings: SiteSettings
) -> Iterator[tuple[str, bytes]]:
    fg = _feedgen(channel, updated, settings)
    fg.link(href=channel.page_url, rel="alternate", type="text/html")
    for rel, href in _links(channel, "atom", settings):
        if rel == "hub":
            fg.link(href=href, rel=rel)
        else:
            fg.link(href=href, rel=rel, type=FEED_MEDIA_TYPES["atom"])
    # RSS has one link and feedgen writes only the self atom:link: the rest go in as atom:link.
    rss_links = _links(channel, "rss", settings)
    if channel.archive:
        fg.register_extension("history", _extension(archive=True, rss=False), atom=True, rss=False)
    extension = _extension(archive=channel.archive, rss=True, links=tuple(rss_links[1:]))
    fg.register_extension("links", extension, atom=False, rss=True)
    atom = fg.atom_str(pretty=True, encoding="UTF-8")
    yield channel.paths["atom"], _splice(atom, _ATOM_END, (i.atom for i in items))
    fg.link(href=rss_links[0][1], rel="self", type=FEED_MEDIA_TYPES["rss"], replace=True)
    fg.link(href=channel.page_url, rel="alternate", type="text/html")
    rss = fg.rss_str(pretty=True, encoding="UTF-8")
    yield channel.paths["rss"], _splice(rss, _RSS_END, (i.rss for i in items))
    yield channel.paths["json"], _json_feed(channel, [i.json for i in items], settings)


@functools.cache
def import_feedgen() -> tuple[type[FeedGenerator], type, type]:
    """feedgen's generator, an extension that writes what feedgen does not (the RSS atom:link
    elements besides self, and fh:archive), and one for an entry's `rel="related"` link
    (feedgen 1.0 writes an entry's links without their rel).

    Imported when first needed: a build's main process plans while workers render, and
    importing feedgen (with lxml and dateutil) would add 20-35 ms to its start.
    """
    from feedgen.ext.base import BaseExtension
    from feedgen.feed import FeedGenerator

    class Extras(BaseExtension):  # type: ignore[misc]  # feedgen is untyped
        archive: bool = False
        rss: bool = False
        links: tuple[tuple[str, str], ...] = ()

        def extend_ns(self) -> dict[str, str]:
            found = {"atom": _ATOM_NS} if self.rss else {}
            return found | ({"fh": _HISTORY_NS} if self.archive else {})

        def _archived(self, parent: Any) -> None:
            if self.archive:
                parent.append(parent.makeelement(f"{{{_HISTORY_NS}}}archive", {}))

        def extend_atom(self, feed: Any) -> Any:
            self._archived(feed)
            return feed

        def extend_rss(self, feed: Any) -> Any:
            channel = feed[0]
            for rel, href in self.links:
                channel.append(
                    channel.makeelement(f"{{{_ATOM_NS}}}link", {"rel": rel, "href": href})
                )
            self._archived(channel)
            return feed

    class PaperLink(BaseExtension):  # type: ignore[misc]
        href: str | None = None

        def extend_atom(self, entry: Any) -> Any:
            if self.href:
                attrs = {"href": self.href, "rel": "related", "type": "text/html"}
                # Unqualified, as feedgen writes its own: in the document's default namespace
                # (Atom), where a qualified name would get an "ns0:" prefix.
                entry.append(entry.makeelement("link", attrs))
            return entry

    return FeedGenerator, Extras, PaperLink


@functools.cache
def _extension(archive: bool, rss: bool, links: tuple[tuple[str, str], ...] = ()) -> type:
    fields = {"archive": archive, "rss": rss, "links": links}
    return type("Extras", (import_feedgen()[1],), fields)


def _json_feed(channel: Channel, items_json: list[bytes], settings: SiteSettings) -> bytes:
    document: dict[str, object] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": clean_text(channel.title),
        "home_page_url": channel.page_url,
        "feed_url": channel.current["json"],  # the feed's identity, on every document of it
    }
    urls = Urls(settings.base_url)
    document |= {"icon": urls.of(ICON_LARGE), "favicon": urls.of(ICON_SMALL)}
    if channel.older:
        document["next_url"] = channel.older["json"]  # older items, as JSON Feed pages go
    document |= {
        "description": clean_text(channel.description),
        "language": channel.lang,
        "authors": [
            {"name": clean_text(settings.author_name), "url": f"mailto:{settings.author_email}"}
        ],
    }
    if settings.websub_hub and not channel.archive:
        document["hubs"] = [{"type": "WebSub", "url": settings.websub_hub}]
    # One item per line: readable and diffable, and each line comes from json's C encoder
    # (indenting everything takes the pure-Python one, a quarter of a feed's render time).
    head = json.dumps(document, ensure_ascii=False, indent=2)[: -len("\n}")].encode()
    listed = b"[\n    " + b",\n    ".join(items_json) + b"\n  ]" if items_json else b"[]"
    return b"".join((head, b',\n  "items": ', listed, b"\n}\n"))


def _json_item(item: Item, lang: Lang) -> dict[str, object]:
    found: dict[str, object] = {"id": item.id, "url": item.url}
    if item.external_url:
        found["external_url"] = item.external_url
    return found | {
        "title": item.title,
        # content_html, summary, date_published: in this order (summarised cuts between them)
        "content_html": item.content_html,
        "summary": item.summary,
        "date_published": item.published.isoformat(),
        "date_modified": item.updated.isoformat(),
        "tags": list(item.tags),
        "language": lang,
    }
