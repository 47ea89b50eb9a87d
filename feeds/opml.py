"""The OPML 2.0 list of every feed: per language, its feed of notes and its feed of digests,
then a folder of its tag feeds."""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree

from .config import SiteSettings
from .i18n import TEXT
from .model import LANGS, Lang, clean_text
from .urls import (
    Urls,
    archive_page_path,
    digest_feed_path,
    feed_path,
    tag_page_path,
    tag_slug,
)


def render_opml(tags: Sequence[str], settings: SiteSettings) -> bytes:
    """An OPML 2.0 subscription list: per language, the language's feeds of notes and of
    digests, then a folder of tag feeds."""
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
            urls.of(feed_path(lang, None, "atom")),
            urls.of(archive_page_path(lang)),
            lang,
        )
        _outline(
            group,
            TEXT[lang]["digest_feed_title"].format(title=settings.title[lang]),
            urls.of(digest_feed_path(lang, "atom")),
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
                urls.of(feed_path(lang, slug, "atom")),
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
