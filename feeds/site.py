"""The static web archive: landing page, archives, digest pages, tag pages, 404, sitemap, robots."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from xml.etree import ElementTree

import jinja2

from .config import SiteSettings
from .i18n import TEXT, format_digest_date, format_month, short_authors
from .model import LANGS, Digest, DigestRef, Lang, NoteRef, Page, clean_text
from .service_text import SERVICE_TEXT
from .templating import render
from .urls import (
    FEED_FORMATS,
    FEED_LABELS,
    FEED_MEDIA_TYPES,
    HOME_PATH,
    NOT_FOUND_PATH,
    OPML_PATH,
    SERVICE_SUBSCRIBE,
    SITEMAP_PATH,
    Urls,
    archive_page_path,
    digest_page_path,
    feed_path,
    service_url,
    tag_index_path,
    tag_page_path,
    tag_slug,
)
from .views import NoteViews

DIGEST_TEMPLATE = "digest.html"
TAG_TEMPLATE = "tag.html"


@dataclass(frozen=True)
class TagEntry:
    """One note in the list on a tag page: the full note is on its digest page."""

    title: str
    url: str
    authors: str
    digest_url: str
    digest_label: str


MAIN_PAGE = Page()


def _other(lang: Lang) -> Lang:
    return "en" if lang == "ko" else "ko"


class SiteRenderer:
    """Renders web pages; holds what every page shares. Each page is rendered from what it shows."""

    def __init__(self, settings: SiteSettings, env: jinja2.Environment):
        self.settings = settings
        self.env = env
        self.urls = Urls(settings.base_url)
        self.views = NoteViews(settings)

    # -- shared pieces ---------------------------------------------------------------------

    def feeds(
        self, lang: Lang, slug: str | None = None, display: str | None = None
    ) -> list[dict[str, str]]:
        title = clean_text(self.settings.title[lang])
        if display is not None:
            title = TEXT[lang]["tag_feed_title"].format(title=title, tag=display)
        paths = {fmt: feed_path(lang, slug, fmt) for fmt in FEED_FORMATS}
        return [
            {
                "type": FEED_MEDIA_TYPES[fmt],
                "title": f"{title} ({FEED_LABELS[fmt]})",
                "label": FEED_LABELS[fmt],
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

    def render(self, template: str, **context: Any) -> bytes:
        return render(self.env, template, **context).encode()

    def signup(self, lang: Lang) -> dict[str, Any] | None:
        """The newsletter sign-up form (service/_signup_form.html), posting to the
        subscription service; None when there is no service (`subscriptions_url`)."""
        if not self.settings.subscriptions_url:
            return None
        action = service_url(self.settings.subscriptions_url, SERVICE_SUBSCRIBE)
        text = SERVICE_TEXT[lang]
        return {"action": action, "lang": lang, "chosen": lang, "email": "", "text": text}

    def digest_link(self, digest: DigestRef, lang: Lang) -> dict[str, str]:
        return {
            "url": self.urls.of(digest_page_path(lang, digest.id)),
            "label": digest_label(digest, lang),
        }

    def digest_entry(self, digest: DigestRef, lang: Lang) -> dict[str, Any]:
        return {**self.digest_link(digest, lang), "count": digest.size}

    # -- pages -----------------------------------------------------------------------------

    def home(self, latest: Sequence[DigestRef]) -> bytes:
        """The landing page: both languages, their latest digests and every way to subscribe."""
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
                    "latest": [self.digest_entry(d, lang) for d in latest],
                    "archive": self.urls.of(archive_page_path(lang)),
                    "tags": self.urls.of(tag_index_path(lang)),
                    "feeds": self.feeds(lang),
                    "newsletter": newsletter,
                    "newsletter_label": newsletter.removeprefix("mailto:").split("?")[0],
                    "signup": self.signup(lang),
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
        return self.render("home.html", page=page, sections=sections)

    def archive_page(self, lang: Lang, digests: Sequence[DigestRef]) -> bytes:
        """Every digest, newest first, grouped by month."""
        months: dict[str, list[dict[str, Any]]] = {}
        for digest in digests:
            months.setdefault(format_month(digest.date, lang), []).append(
                self.digest_entry(digest, lang)
            )
        page = self.page(lang, archive_page_path, TEXT[lang]["archive"])
        return self.render("archive.html", page=page, months=list(months.items()))

    def digest_page(
        self, digest: Digest, lang: Lang, newer: DigestRef | None, older: DigestRef | None
    ) -> bytes:
        """One digest with every note in full, linked to the digests before and after it."""
        page = self.page(
            lang, lambda code: digest_page_path(code, digest.id), digest_label(digest.ref, lang)
        )
        page["prev"] = self.digest_link(older, lang) if older else None
        page["next"] = self.digest_link(newer, lang) if newer else None
        taken = frozenset(note.slug for note in digest.notes)
        items = [self.views(digest.id, note, lang, taken) for note in digest.notes]
        signup = self.signup(lang)
        return self.render(DIGEST_TEMPLATE, page=page, items=items, signup=signup)

    def tag_index(self, lang: Lang, counts: Sequence[tuple[str, int]]) -> bytes:
        """Every tag with its number of notes, as given (most used first)."""
        tags = [
            {
                "name": display,
                "url": self.urls.of(tag_page_path(lang, tag_slug(display))),
                "count": n,
            }
            for display, n in counts
        ]
        page = self.page(lang, tag_index_path, TEXT[lang]["all_tags"])
        return self.render("tags.html", page=page, tags=tags)

    def tag_page(
        self,
        lang: Lang,
        tag: str,
        notes: Sequence[tuple[DigestRef, NoteRef]],
        pages: Page = MAIN_PAGE,
    ) -> bytes:
        """Notes with one tag, newest first, each linked to its place on its digest page.

        The tag's main page, or (pages.number) one of the pages its older notes move to.
        """
        slug = tag_slug(tag)
        heading = TEXT[lang]["tagged"].format(tag=tag)
        span = None
        if pages.number is not None and notes:  # an older page: named by the dates it covers
            span = f"{digest_label(notes[-1][0], lang)} – {digest_label(notes[0][0], lang)}"
            heading = f"{heading} · {span}"
        page = self.page(lang, lambda code: tag_page_path(code, slug, pages.number), heading)
        page["tag_feeds"] = self.feeds(lang, slug, tag)
        page["feeds"] = page["tag_feeds"] + page["feeds"]
        page["total"] = pages.total
        page["span"] = span

        def link(number: int | None, label: str) -> dict[str, str]:
            return {
                "url": self.urls.of(tag_page_path(lang, slug, number)),
                "label": TEXT[lang][label],
            }

        page["older"] = link(pages.older, "older_notes") if pages.older is not None else None
        page["newer"] = link(pages.newer, "newer_notes") if pages.number is not None else None
        entries = []
        links: dict[str, dict[str, str]] = {}
        for digest, note in notes:
            found = links.get(digest.id) or links.setdefault(
                digest.id, self.digest_link(digest, lang)
            )
            entries.append(
                TagEntry(
                    title=clean_text(note.title),
                    url=self.urls.note(lang, digest.id, note.slug),
                    authors=clean_text(short_authors(note.authors, lang)),
                    digest_url=found["url"],
                    digest_label=found["label"],
                )
            )
        return self.render(TAG_TEMPLATE, page=page, entries=entries)

    def not_found(self) -> bytes:
        page = self.page("ko", lambda _: HOME_PATH, TEXT["ko"]["not_found"])
        page["title"] = page["heading"] = f"{TEXT['ko']['not_found']} · Page not found"
        page["archive_en"] = self.urls.of(archive_page_path("en"))
        page["canonical"] = self.urls.of(NOT_FOUND_PATH)
        return self.render("404.html", page=page)

    def sitemap(self, pages: Iterable[tuple[str, date]]) -> bytes:
        """sitemap.xml for (page path, date last changed)."""
        ns = "http://www.sitemaps.org/schemas/sitemap/0.9"
        urlset = ElementTree.Element("urlset", xmlns=ns)
        for path, lastmod in pages:
            url = ElementTree.SubElement(urlset, "url")
            ElementTree.SubElement(url, "loc").text = self.urls.of(path)
            ElementTree.SubElement(url, "lastmod").text = lastmod.isoformat()
        ElementTree.indent(urlset)
        data: bytes = ElementTree.tostring(urlset, encoding="UTF-8", xml_declaration=True)
        return data + b"\n"

    def robots(self) -> bytes:
        return f"User-agent: *\nAllow: /\n\nSitemap: {self.urls.of(SITEMAP_PATH)}\n".encode()


def digest_label(digest: DigestRef, lang: Lang) -> str:
    return format_digest_date(digest.date, digest.part, lang)
