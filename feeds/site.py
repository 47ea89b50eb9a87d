"""The static web archive: landing page, archives, digest pages, tag pages, 404, sitemap, robots."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from xml.etree import ElementTree

import jinja2

from .config import SiteSettings
from .i18n import (
    LOCALES,
    TEXT,
    first_titles,
    format_digest_date,
    format_month,
    short_authors,
    shortened,
)
from .model import LANGS, Digest, DigestRef, Lang, NoteRef, Page, clean_text
from .service_text import SERVICE_TEXT
from .templating import render
from .urls import (
    FAVICON_ICO,
    FAVICON_SVG,
    FEED_FORMATS,
    FEED_LABELS,
    FEED_MEDIA_TYPES,
    HOME_PATH,
    ICON_LARGE,
    NOT_FOUND_PATH,
    OPML_PATH,
    SERVICE_SUBSCRIBE,
    SITEMAP_PATH,
    Urls,
    archive_page_path,
    digest_feed_path,
    digest_page_path,
    feed_path,
    search_bundle_path,
    search_page_path,
    service_url,
    tag_index_path,
    tag_page_path,
    tag_slug,
)
from .views import note_views

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
        self.views = note_views(settings)

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

    def digest_feeds(self, lang: Lang) -> list[dict[str, str]]:
        """The feed of a language with one item per digest, in each format."""
        title = TEXT[lang]["digest_feed_title"].format(title=clean_text(self.settings.title[lang]))
        return [
            {
                "type": FEED_MEDIA_TYPES[fmt],
                "title": f"{title} ({FEED_LABELS[fmt]})",
                "label": FEED_LABELS[fmt],
                "url": self.urls.of(digest_feed_path(lang, fmt)),
            }
            for fmt in FEED_FORMATS
        ]

    def feed_groups(self, lang: Lang) -> list[dict[str, Any]]:
        """The feeds of a language, each named by what one item is."""
        return [
            {"label": TEXT[lang]["feed_notes"], "feeds": self.feeds(lang)},
            {"label": TEXT[lang]["feed_digests"], "feeds": self.digest_feeds(lang)},
        ]

    def page(
        self,
        lang: Lang,
        path_in: Callable[[Lang], str],
        heading: str,
        description: str,
        **extra: Any,
    ) -> dict[str, Any]:
        """What base.html needs: titles, canonical and alternate URLs, feeds, navigation, and
        what a link preview shows (og:, description: from the page's own content)."""
        other = _other(lang)
        path = path_in(lang)
        site_title = clean_text(self.settings.title[lang])
        return {
            "lang": lang,
            "text": TEXT[lang],
            "title": f"{heading} · {site_title}",
            "heading": heading,
            "description": shortened(clean_text(description)),
            "og_type": "website",
            "locale": LOCALES[lang],
            "other_locale": LOCALES[other],
            "site_title": site_title,
            "icons": {
                "svg": self.urls.of(FAVICON_SVG),
                "ico": self.urls.of(FAVICON_ICO),
                "large": self.urls.of(ICON_LARGE),
            },
            "search": self.urls.of(search_page_path(lang)),
            "feed_groups": self.feed_groups(lang),
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

    def home(self, latest: Sequence[Digest]) -> bytes:
        """The landing page, one page for both languages: the latest digests (each with its
        first titles and a link per language), the newsletter sign-up and every feed."""
        title = " · ".join(clean_text(self.settings.title[lang]) for lang in LANGS)
        newest = latest[0] if latest else None
        description = (
            TEXT["en"]["home_description"].format(
                date=digest_label(newest.ref, "en"),
                titles=first_titles([n.title for n in newest.notes], "en"),
            )
            if newest
            else self.settings.description["en"]
        )
        page = self.page("ko", lambda _: HOME_PATH, title, description)
        page["title"] = title
        page["other"] = None
        page["languages"] = [
            {"lang": lang, "url": self.urls.of(archive_page_path(lang))} for lang in LANGS
        ] + [{"lang": "x-default", "url": self.urls.of(HOME_PATH)}]
        page["feeds"] = [f for lang in LANGS for f in self.feeds(lang) + self.digest_feeds(lang)]
        sides = {
            lang: {
                "lang": lang,
                "text": TEXT[lang],
                "title": clean_text(self.settings.title[lang]),
                "description": clean_text(self.settings.description[lang]),
                "archive": self.urls.of(archive_page_path(lang)),
                "tags": self.urls.of(tag_index_path(lang)),
                "search": self.urls.of(search_page_path(lang)),
                "feed_groups": self.feed_groups(lang),
            }
            for lang in LANGS
        }
        cards = [
            {
                "date": {lang: digest_label(d.ref, lang) for lang in LANGS},
                "urls": {lang: self.urls.of(digest_page_path(lang, d.id)) for lang in LANGS},
                "count": {lang: TEXT[lang]["notes_count"].format(n=len(d.notes)) for lang in LANGS},
                "titles": [clean_text(n.title) for n in d.notes[:3]],
                "more": len(d.notes) - 3,
            }
            for d in latest
        ]
        newsletter = (
            self.settings.subscribe_url or f"mailto:{self.settings.author_email}?subject=subscribe"
        )
        signup = self.signup("ko")
        if signup is not None:
            signup["chosen"] = "both"
        return self.render(
            "home.html",
            page=page,
            sides=[sides[lang] for lang in LANGS],
            cards=cards,
            signup=signup,
            newsletter=None if signup else newsletter,
            newsletter_label=newsletter.removeprefix("mailto:").split("?")[0],
        )

    def archive_page(self, lang: Lang, digests: Sequence[DigestRef]) -> bytes:
        """Every digest, newest first, grouped by month."""
        months: dict[str, list[dict[str, Any]]] = {}
        for digest in digests:
            months.setdefault(format_month(digest.date, lang), []).append(
                self.digest_entry(digest, lang)
            )
        newest = digest_label(digests[0], lang) if digests else "-"
        description = TEXT[lang]["archive_description"].format(n=len(digests), date=newest)
        page = self.page(lang, archive_page_path, TEXT[lang]["archive"], description)
        page["feeds"] = page["feeds"] + self.digest_feeds(lang)
        return self.render("archive.html", page=page, months=list(months.items()))

    def search_page(self, lang: Lang, shards: int) -> bytes:
        """Full-text search of the notes of a language (Pagefind, in the browser): the newest
        index and, merged into it, the older ones (feeds.search)."""
        text = TEXT[lang]
        page = self.page(lang, search_page_path, text["search_heading"], text["search_hint"])
        bundles = [self.urls.of(search_bundle_path(n)) for n in range(shards, 0, -1)]
        page["bundle"] = bundles[0] if bundles else None
        page["merged"] = bundles[1:]
        return self.render("search.html", page=page)

    def digest_page(
        self, digest: Digest, lang: Lang, newer: DigestRef | None, older: DigestRef | None
    ) -> bytes:
        """One digest with every note in full, linked to the digests before and after it."""
        label = digest_label(digest.ref, lang)
        description = TEXT[lang]["digest_description"].format(
            date=label,
            n=len(digest.notes),
            titles=first_titles([n.title for n in digest.notes], lang),
        )
        page = self.page(lang, lambda code: digest_page_path(code, digest.id), label, description)
        page["og_type"] = "article"
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
        description = TEXT[lang]["tags_description"].format(
            n=len(tags), tags=", ".join(f"#{t['name']}" for t in tags[:8])
        )
        page = self.page(lang, tag_index_path, TEXT[lang]["all_tags"], description)
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
        description = TEXT[lang]["tag_description"].format(
            tag=tag,
            n=pages.total or len(notes),
            titles=first_titles([note.title for _, note in notes], lang),
        )
        page = self.page(
            lang, lambda code: tag_page_path(code, slug, pages.number), heading, description
        )
        page["tag_feeds"] = self.feeds(lang, slug, tag)
        page["feeds"] = page["tag_feeds"] + page["feeds"]
        page["tag_groups"] = [
            {"label": TEXT[lang]["feed_tag"].format(tag=tag), "feeds": page["tag_feeds"]}
        ]
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
        heading = f"{TEXT['ko']['not_found']} · Page not found"
        page = self.page("ko", lambda _: HOME_PATH, heading, heading)
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
