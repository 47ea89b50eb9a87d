"""The static web archive: landing page, archives, digest pages, tag pages, 404, sitemap, robots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from xml.etree import ElementTree

import jinja2

from .config import Settings
from .i18n import TEXT, format_digest_date, format_month
from .model import LANGS, Archive, Digest, Lang, Note, clean_note, clean_text, tag_key
from .templating import render
from .urls import (
    FEED_FORMATS,
    HOME_PATH,
    NOT_FOUND_PATH,
    OPML_PATH,
    ROBOTS_PATH,
    SITEMAP_PATH,
    Urls,
    archive_page_path,
    digest_page_path,
    lang_feed_path,
    tag_feed_path,
    tag_index_path,
    tag_page_path,
    tag_slugs,
)

_FEED_TYPES = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}
_FEED_LABELS = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}


@dataclass(frozen=True)
class NoteItem:
    note: Note
    slug: str
    url: str
    commentary: tuple[str, ...]
    tag_links: tuple[tuple[str, str], ...]
    digest_link: dict[str, str] | None


def _other(lang: Lang) -> Lang:
    return "en" if lang == "ko" else "ko"


class SiteRenderer:
    """Renders the pages of one archive; holds what every page shares."""

    def __init__(self, archive: Archive, settings: Settings, env: jinja2.Environment):
        self.archive = archive
        self.settings = settings
        self.env = env
        self.urls = Urls(settings.base_url)
        self.tags = archive.tags()
        self.slugs = tag_slugs(self.tags.values())
        self.sitemap: list[tuple[str, date]] = []

    # -- shared pieces ---------------------------------------------------------------------

    def feeds(
        self, lang: Lang, slug: str | None = None, display: str | None = None
    ) -> list[dict[str, str]]:
        title = clean_text(self.settings.title[lang])
        if display is not None:
            title = TEXT[lang]["tag_feed_title"].format(title=title, tag=display)
        paths = {
            fmt: (tag_feed_path(lang, slug, fmt) if slug else lang_feed_path(lang, fmt))
            for fmt in FEED_FORMATS
        }
        return [
            {
                "type": _FEED_TYPES[fmt],
                "title": f"{title} ({_FEED_LABELS[fmt]})",
                "label": _FEED_LABELS[fmt],
                "url": self.urls.of(path),
            }
            for fmt, path in paths.items()
        ]

    def page(
        self, lang: Lang, path_in: Callable[[Lang], str], heading: str, **extra: Any
    ) -> dict[str, Any]:
        """What base.html needs: titles, canonical and alternate URLs, feeds, navigation."""
        other = _other(lang)
        path = path_in(lang)
        return {
            "lang": lang,
            "text": TEXT[lang],
            "title": f"{heading} · {clean_text(self.settings.title[lang])}",
            "heading": heading,
            "description": clean_text(self.settings.description[lang]),
            "site_title": clean_text(self.settings.title[lang]),
            "canonical": self.urls.of(path),
            "languages": [{"lang": code, "url": self.urls.of(path_in(code))} for code in LANGS],
            "other": {
                "lang": other,
                "name": TEXT[lang]["other_language"],
                "url": self.urls.of(path_in(other)),
            },
            "home": self.urls.of(HOME_PATH),
            "archive": self.urls.of(archive_page_path(lang)),
            "tags": self.urls.of(tag_index_path(lang)),
            "opml": self.urls.of(OPML_PATH),
            "feeds": self.feeds(lang),
            **extra,
        }

    def emit(
        self, template: str, path: str, lastmod: date | None, **context: Any
    ) -> tuple[str, bytes]:
        if lastmod is not None:
            self.sitemap.append((path, lastmod))
        return path, render(self.env, template, **context).encode()

    def item(self, digest: Digest, raw: Note, lang: Lang, link_digest: bool) -> NoteItem:
        note = clean_note(raw)
        return NoteItem(
            note=note,
            slug=note.slug,
            url=self.urls.note(lang, digest.id, note.slug),
            commentary=note.commentary_for(lang),
            tag_links=self.urls.tag_links(lang, note.tags, self.slugs),
            digest_link={
                "url": self.urls.of(digest_page_path(lang, digest.id)),
                "label": digest_label(digest, lang),
            }
            if link_digest
            else None,
        )

    def digest_entry(self, digest: Digest, lang: Lang) -> dict[str, Any]:
        return {
            "url": self.urls.of(digest_page_path(lang, digest.id)),
            "label": digest_label(digest, lang),
            "count": len(digest.notes),
        }

    # -- pages -----------------------------------------------------------------------------

    def render(self) -> Iterator[tuple[str, bytes]]:
        newest = self.archive.digests[0].date if self.archive.digests else date(1970, 1, 1)
        yield self.home(newest)
        for lang in LANGS:
            yield self.archive_page(lang, newest)
            yield self.tag_index(lang, newest)
            digests = self.archive.digests
            for index, digest in enumerate(digests):
                newer = digests[index - 1] if index > 0 else None
                older = digests[index + 1] if index + 1 < len(digests) else None
                yield self.digest_page(digest, lang, newer, older)
            yield from self.tag_pages(lang)
        yield self.not_found()
        yield SITEMAP_PATH, self.sitemap_xml()
        yield (
            ROBOTS_PATH,
            f"User-agent: *\nAllow: /\n\nSitemap: {self.urls.of(SITEMAP_PATH)}\n".encode(),
        )

    def home(self, newest: date) -> tuple[str, bytes]:
        sections = []
        for lang in LANGS:
            newsletter = (
                self.settings.subscribe_url
                or f"mailto:{self.settings.author_email}?subject=subscribe"
            )
            sections.append(
                {
                    "lang": lang,
                    "text": TEXT[lang],
                    "title": clean_text(self.settings.title[lang]),
                    "description": clean_text(self.settings.description[lang]),
                    "latest": [self.digest_entry(d, lang) for d in self.archive.digests[:10]],
                    "archive": self.urls.of(archive_page_path(lang)),
                    "tags": self.urls.of(tag_index_path(lang)),
                    "feeds": self.feeds(lang),
                    "newsletter": newsletter,
                    "newsletter_label": newsletter.removeprefix("mailto:").split("?")[0],
                }
            )
        title = " · ".join(clean_text(self.settings.title[lang]) for lang in LANGS)
        page = self.page("ko", lambda _: HOME_PATH, title)
        page["title"] = title
        page["other"] = {
            "lang": "en",
            "name": "English",
            "url": self.urls.of(archive_page_path("en")),
        }
        page["languages"] = [
            {"lang": lang, "url": self.urls.of(archive_page_path(lang))} for lang in LANGS
        ] + [{"lang": "x-default", "url": self.urls.of(HOME_PATH)}]
        page["feeds"] = self.feeds("ko") + self.feeds("en")
        return self.emit("home.html", HOME_PATH, newest, page=page, sections=sections)

    def archive_page(self, lang: Lang, newest: date) -> tuple[str, bytes]:
        months: dict[str, list[dict[str, Any]]] = {}
        for digest in self.archive.digests:
            months.setdefault(format_month(digest.date, lang), []).append(
                self.digest_entry(digest, lang)
            )
        path = archive_page_path(lang)
        page = self.page(lang, archive_page_path, TEXT[lang]["archive"])
        return self.emit("archive.html", path, newest, page=page, months=list(months.items()))

    def digest_page(
        self, digest: Digest, lang: Lang, newer: Digest | None, older: Digest | None
    ) -> tuple[str, bytes]:
        path = digest_page_path(lang, digest.id)
        label = digest_label(digest, lang)
        page = self.page(lang, lambda code: digest_page_path(code, digest.id), label)
        page["prev"] = (
            {
                "url": self.urls.of(digest_page_path(lang, older.id)),
                "label": digest_label(older, lang),
            }
            if older
            else None
        )
        page["next"] = (
            {
                "url": self.urls.of(digest_page_path(lang, newer.id)),
                "label": digest_label(newer, lang),
            }
            if newer
            else None
        )
        items = [self.item(digest, note, lang, link_digest=False) for note in digest.notes]
        return self.emit("digest.html", path, digest.date, page=page, items=items)

    def tag_index(self, lang: Lang, newest: date) -> tuple[str, bytes]:
        counts: dict[str, int] = {}
        for digest in self.archive.digests:
            for note in digest.notes:
                for tag in note.tags:
                    counts[tag_key(tag)] = counts.get(tag_key(tag), 0) + 1
        tags = [
            {
                "name": display,
                "url": self.urls.of(tag_page_path(lang, self.slugs[display])),
                "count": counts[key],
            }
            for key, display in sorted(self.tags.items(), key=lambda kv: (-counts[kv[0]], kv[0]))
        ]
        path = tag_index_path(lang)
        page = self.page(lang, tag_index_path, TEXT[lang]["all_tags"])
        return self.emit("tags.html", path, newest, page=page, tags=tags)

    def tag_pages(self, lang: Lang) -> Iterator[tuple[str, bytes]]:
        by_tag: dict[str, list[tuple[Digest, Note]]] = {}
        for digest in self.archive.digests:
            for note in digest.notes:
                for tag in note.tags:
                    by_tag.setdefault(tag_key(tag), []).append((digest, note))
        for key, display in self.tags.items():
            slug = self.slugs[display]
            path = tag_page_path(lang, slug)
            heading = TEXT[lang]["tagged"].format(tag=display)
            page = self.page(lang, lambda code, slug=slug: tag_page_path(code, slug), heading)
            page["tag_feeds"] = self.feeds(lang, slug, display)
            page["feeds"] = page["tag_feeds"] + page["feeds"]
            notes = by_tag[key]
            items = [self.item(d, n, lang, link_digest=True) for d, n in notes]
            yield self.emit("tag.html", path, notes[0][0].date, page=page, items=items)

    def not_found(self) -> tuple[str, bytes]:
        page = self.page("ko", lambda _: HOME_PATH, TEXT["ko"]["not_found"])
        page["title"] = page["heading"] = f"{TEXT['ko']['not_found']} · Page not found"
        page["archive_en"] = self.urls.of(archive_page_path("en"))
        page["canonical"] = self.urls.of(NOT_FOUND_PATH)
        return self.emit("404.html", NOT_FOUND_PATH, None, page=page)

    def sitemap_xml(self) -> bytes:
        ns = "http://www.sitemaps.org/schemas/sitemap/0.9"
        urlset = ElementTree.Element("urlset", xmlns=ns)
        for path, lastmod in self.sitemap:
            url = ElementTree.SubElement(urlset, "url")
            ElementTree.SubElement(url, "loc").text = self.urls.of(path)
            ElementTree.SubElement(url, "lastmod").text = lastmod.isoformat()
        ElementTree.indent(urlset)
        return ElementTree.tostring(urlset, encoding="UTF-8", xml_declaration=True) + b"\n"


def digest_label(digest: Digest, lang: Lang) -> str:
    return format_digest_date(digest.date, digest.part, lang)


def render_site(
    archive: Archive, settings: Settings, env: jinja2.Environment
) -> Iterator[tuple[str, bytes]]:
    """Every page of the web archive, as (path under dist/, bytes)."""
    yield from SiteRenderer(archive, settings, env).render()
