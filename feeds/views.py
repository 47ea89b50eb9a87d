"""A note as readers see it in one language: the one view a page, a newsletter and a feed share."""

from __future__ import annotations

from dataclasses import dataclass

from .i18n import short_authors
from .model import Lang, Note, clean_note
from .urls import Urls


@dataclass(frozen=True, slots=True)
class NoteView:
    """One note of a digest, in one language, with every text cleaned and every URL made.

    `authors` is the short list (the first three names, then "et al."); the whole list is
    `note.authors`.
    """

    note: Note
    slug: str
    url: str
    authors: str
    commentary: tuple[str, ...]
    tag_links: tuple[tuple[str, str], ...]


def note_view(digest_id: str, note: Note, lang: Lang, urls: Urls) -> NoteView:
    """The view of one note of a digest in one language."""
    note = clean_note(note)
    return NoteView(
        note=note,
        slug=note.slug,
        url=urls.note(lang, digest_id, note.slug),
        authors=short_authors(note.authors, lang),
        commentary=note.commentary_for(lang),
        tag_links=urls.tag_links(lang, note.tags),
    )
