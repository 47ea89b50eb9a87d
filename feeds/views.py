"""A note as readers see it in one language: the one view a page, a newsletter and a feed share."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import NamedTuple

from .config import SiteSettings
from .i18n import TEXT, short_authors
from .links import paper_url
from .model import Lang, Note, clean_note
from .parse import slugify
from .urls import Urls


def other(lang: Lang) -> Lang:
    return "en" if lang == "ko" else "ko"


@dataclass(frozen=True, slots=True)
class NoteView:
    """One note of a digest, in one language, with every text cleaned and every URL made.

    `authors` is the short list (the first three names, then "et al."); the whole list is
    `note.authors`. The commentary is in `commentary_lang`: the page's language, or the other
    one (with `commentary_label` saying so) when the note has none in the page's language.
    `aliases`: other anchors that lead to the note (its title's slug, when the note keeps the
    slug it was first published with).
    """

    note: Note
    slug: str
    url: str
    authors: str
    commentary: tuple[str, ...]
    commentary_lang: Lang
    commentary_label: str | None
    tag_links: tuple[tuple[str, str], ...]
    paper_url: str
    aliases: tuple[str, ...]


_MEMO_SIZE = 256
"""Views kept per site: more than a digest's, in both languages. A digest's page, its
newsletters and the feed items of its notes, rendered one after another (feeds.plan orders
the jobs so), show the same ones."""


class _Shared(NamedTuple):
    """What a note's views in both languages share."""

    note: Note  # cleaned
    title_slug: str
    paper_url: str


class NoteViews:
    """Makes the views of notes, for one site, and keeps the last ones made (note_views gives
    the shared one)."""

    def __init__(self, base_url: str, search: str):
        self.urls = Urls(base_url)
        self.search = search
        self._made = functools.lru_cache(maxsize=_MEMO_SIZE)(self._make)
        self._shared = functools.lru_cache(maxsize=_MEMO_SIZE)(self._share)

    def __call__(
        self, digest_id: str, note: Note, lang: Lang, taken: frozenset[str] = frozenset()
    ) -> NoteView:
        """The view of one note of a digest in one language; `taken`: every anchor of its
        digest page, so that an alias never shares one."""
        view = self._made(digest_id, note, lang)
        if view.aliases and view.aliases[0] in taken:
            return dataclasses.replace(view, aliases=())
        return view

    def _share(self, note: Note) -> _Shared:
        note = clean_note(note)
        texts = (*note.abstract, *note.korean, *note.english)
        return _Shared(note, slugify(note.title), paper_url(note.title, texts, self.search))

    def _make(self, digest_id: str, note: Note, lang: Lang) -> NoteView:
        note, title_slug, paper = self._shared(note)
        shown: Lang = (
            lang if note.commentary(lang) or not note.commentary(other(lang)) else other(lang)
        )
        return NoteView(
            note=note,
            slug=note.slug,
            url=self.urls.note(lang, digest_id, note.slug),
            authors=short_authors(note.authors, lang),
            commentary=note.commentary(shown),
            commentary_lang=shown,
            commentary_label=None if shown == lang else TEXT[lang]["commentary_in_other"],
            tag_links=self.urls.tag_links(lang, note.tags),
            paper_url=paper,
            aliases=(title_slug,) if title_slug != note.slug else (),
        )


def note_views(site: SiteSettings) -> NoteViews:
    """The views of this site's notes, one maker per process (what is made is kept a while)."""
    return _note_views(site.base_url, site.paper_search_url)


@functools.cache
def _note_views(base_url: str, search: str) -> NoteViews:
    return NoteViews(base_url, search)
