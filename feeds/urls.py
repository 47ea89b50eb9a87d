"""Every output path and public URL. Nothing else in feeds builds one.

Paths are POSIX paths relative to `dist/`; URLs are absolute, under base_url.
The feed URLs are public: once published they must never change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import quote

from .errors import FeedsError
from .model import Lang, tag_key, tag_problem

FeedFormat = Literal["atom", "rss", "json"]
FEED_FORMATS: tuple[FeedFormat, ...] = ("atom", "rss", "json")
FEED_FILES: dict[FeedFormat, str] = {"atom": "atom.xml", "rss": "rss.xml", "json": "feed.json"}
FEED_MEDIA_TYPES: dict[FeedFormat, str] = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}
FEED_LABELS: dict[FeedFormat, str] = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}
MailPart = Literal["html", "txt", "eml"]


TAG_SLUG_BYTES = 120
"""A tag's path segment stays within this many bytes (file systems allow 255 per name)."""


@lru_cache(maxsize=16384)
def tag_slug(tag: str) -> str:
    """The path segment of a tag: its grouping key (letters, digits, '-' and '_'; Hangul stays).

    A key longer than TAG_SLUG_BYTES in UTF-8 is cut at a character and given a hash of the
    whole key: bounded, and stable. The parser accepts only tags that have a path-safe form
    (model.tag_problem)."""
    slug = tag_key(tag)
    if tag_problem(tag) is not None:
        raise FeedsError(f"the tag {tag!r} has no path-safe form")
    if len(slug) * 4 > TAG_SLUG_BYTES and len(slug.encode()) > TAG_SLUG_BYTES:
        digest = hashlib.sha256(slug.encode()).hexdigest()[:12]
        cut = slug.encode()[: TAG_SLUG_BYTES - 13].decode("utf-8", "ignore")
        slug = f"{cut}-{digest}"
    return slug


def feed_path(lang: Lang, slug: str | None, fmt: FeedFormat, number: int | None = None) -> str:
    """A document of the feed of a language (slug None) or of one tag in it: the subscription
    document (`ko/atom.xml`, `ko/tags/moe/atom.xml`), or with a number one of its archive
    documents, 1 the oldest (`ko/feeds/1.atom.xml`)."""
    folder = lang if slug is None else f"{lang}/tags/{slug}"
    name = FEED_FILES[fmt] if number is None else f"feeds/{number}.{FEED_FILES[fmt]}"
    return f"{folder}/{name}"


def digest_feed_path(lang: Lang, fmt: FeedFormat) -> str:
    """The feed of a language with one item per digest (`ko/digests/atom.xml`)."""
    return f"{lang}/digests/{FEED_FILES[fmt]}"


def search_page_path(lang: Lang) -> str:
    """The search page of a language (served as `{lang}/search/`)."""
    return f"{lang}/search/index.html"


SEARCH_FOLDER = "pagefind"
"""Pagefind's indexes and their script, for every language (it splits them by `<html lang>`)."""


def search_bundle_path(shard: int) -> str:
    """The folder of one Pagefind index (a shard of the digests, counted from the oldest)."""
    return f"{SEARCH_FOLDER}/{shard}/"


ICON_FILES = ("favicon.svg", "favicon.ico", "icon-144.png", "icon-512.png")
"""The site's icons: taken from the templates folder and published at the top of dist/."""
FAVICON_SVG, FAVICON_ICO, ICON_SMALL, ICON_LARGE = ICON_FILES

OPML_PATH = "feeds.opml"
HOME_PATH = "index.html"
NOT_FOUND_PATH = "404.html"
SITEMAP_PATH = "sitemap.xml"
ROBOTS_PATH = "robots.txt"


def archive_page_path(lang: Lang) -> str:
    return f"{lang}/index.html"


def digest_page_path(lang: Lang, digest_id: str) -> str:
    """A digest's web page, served as `{lang}/{digest_id}/`."""
    return f"{lang}/{digest_id}/index.html"


def tag_index_path(lang: Lang) -> str:
    return f"{lang}/tags/index.html"


def tag_page_path(lang: Lang, slug: str, number: int | None = None) -> str:
    """A tag's page (its newest notes), or with a number one of its older pages, 1 the oldest."""
    return (
        f"{lang}/tags/{slug}/index.html" if number is None else f"{lang}/tags/{slug}/{number}.html"
    )


def newsletter_path(digest_id: str, lang: Lang, part: MailPart) -> str:
    """One part of a digest's newsletter in one language: `.html`, `.txt` or the whole `.eml`."""
    return f"newsletters/{digest_id}/{lang}.{part}"


TOKEN_PLACEHOLDER = "__RECIPIENT_TOKEN__"
"""Where a built newsletter leaves each recipient's token, for the sender to fill in."""


def unsubscribe_url(
    service: str | None, endpoint: str | None, token: str = TOKEN_PLACEHOLDER
) -> str | None:
    """The https link of one recipient's own preferences page, which one-click unsubscribes
    when POSTed to (RFC 8058): at the subscription service (`subscriptions_url`), else at
    the `unsubscribe_url` setting; None when neither is set. With the placeholder, as a built
    newsletter carries it."""
    if service:
        return service_url(service, SERVICE_PREFERENCES, token)
    if not endpoint:
        return None
    joiner = "&" if "?" in endpoint else "?"
    return f"{endpoint}{joiner}token={token}"


# The subscription service's pages, under its public base URL (`subscriptions_url`).
SERVICE_SIGN_UP = ""
SERVICE_SUBSCRIBE = "subscribe"  # POST: email, lang
SERVICE_CONFIRM = "confirm"  # /confirm/{token}: GET shows, POST confirms
SERVICE_PREFERENCES = "p"  # /p/{token}: GET shows, POST changes or one-click unsubscribes


def service_url(base: str, page: str, token: str | None = None) -> str:
    """The public URL of a page of the subscription service."""
    base = base if base.endswith("/") else base + "/"
    return f"{base}{page}/{token}" if token is not None else f"{base}{page}"


@lru_cache(maxsize=16384)
def _url(base_url: str, path: str) -> str:
    if path == "index.html" or path.endswith("/index.html"):
        path = path[: -len("index.html")]
    return base_url + quote(path, safe="/")


@dataclass(frozen=True)
class Urls:
    """Absolute URLs for the paths above, under one base URL (which ends with '/')."""

    base_url: str

    def of(self, path: str, fragment: str | None = None) -> str:
        """The public URL of an output path; `dir/index.html` is served as `dir/`."""
        url = _url(self.base_url, path)
        return f"{url}#{quote(fragment, safe='')}" if fragment else url

    def note(self, lang: Lang, digest_id: str, slug: str) -> str:
        """The permalink of a note: its anchor on the digest page."""
        return self.of(digest_page_path(lang, digest_id), slug)

    def tag_links(self, lang: Lang, tags: Iterable[str]) -> tuple[tuple[str, str], ...]:
        """(tag, URL of its page) for each tag, in order."""
        return tuple((tag, self.of(tag_page_path(lang, tag_slug(tag)))) for tag in tags)
