"""The parsed archive: frozen, typed, and free of I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

Lang = Literal["ko", "en"]
Day = date  # for annotations inside classes with a field named `date`
LANGS: tuple[Lang, ...] = ("ko", "en")

# C0/C1 controls (tab aside), lone surrogates and the two noncharacters XML 1.0 forbids.
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _is_clean(text: str) -> bool:
    """Nothing for clean_text to drop (the usual case, checked in C)."""
    return text.replace("\n", "").isprintable()


def clean_text(text: str) -> str:
    """Drop the characters no feed, page or header may carry; tabs become spaces."""
    if _is_clean(text):
        return text
    return _UNSAFE_CHARS.sub("", text.replace("\t", " "))


def tag_key(tag: str) -> str:
    """The grouping key of a tag: tags differing only in case are the same tag."""
    return tag.casefold()


_PATH_SAFE = re.compile(r"[\w-]+")


def tag_problem(tag: str) -> str | None:
    """Why a tag cannot have a path of its own (its grouping key is its path segment), or None."""
    if tag.isascii():  # the parser's tags are letters, digits, "-" and "_": safe when folded
        return None if tag.strip("-_") else "it has no letter or digit"
    key = tag_key(tag)
    if not _PATH_SAFE.fullmatch(key):
        return f'its folded form "{key}" holds characters a path cannot'
    if not key.strip("-_"):
        return "it has no letter or digit"
    return None


@dataclass(frozen=True, slots=True)
class Note:
    """One paper note: the paper, the author's commentary in both languages, the tags."""

    title: str
    slug: str
    line: int
    authors: tuple[str, ...]
    abstract: tuple[str, ...]
    korean: tuple[str, ...]
    english: tuple[str, ...]
    tags: tuple[str, ...]

    def commentary(self, lang: Lang) -> tuple[str, ...]:
        """The commentary paragraphs in one language."""
        return self.korean if lang == "ko" else self.english

    def commentary_for(self, lang: Lang) -> tuple[str, ...]:
        """What a reader of `lang` gets: that commentary, or the other language's when it is missing."""
        return self.commentary(lang) or self.commentary("en" if lang == "ko" else "ko")

    @property
    def ref(self) -> NoteRef:
        return NoteRef(self.slug, self.title, self.authors)


@dataclass(frozen=True, slots=True)
class NoteRef:
    """A note as lists elsewhere show it: without its text, which only its digest page carries."""

    slug: str
    title: str
    authors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DigestRef:
    """A digest as other pages and feeds refer to it: without its notes, only their number."""

    id: str
    date: date
    part: int | None
    size: int

    def published(self, tz: tzinfo) -> datetime:
        """When the digest appeared: its date at midnight in the site's zone, a part an hour later each."""
        return datetime.combine(self.date, time(0), tz) + timedelta(hours=self.part or 0)

    def note_published(self, index: int, tz: tzinfo) -> datetime:
        """A distinct time per note, so readers that sort by date keep the digest's order."""
        return self.published(tz) + timedelta(seconds=self.size - index)


class _Dated:
    """What a digest and its heads share: where it sorts, and how others refer to it."""

    __slots__ = ()
    id: str
    date: date
    part: int | None
    notes: tuple[object, ...]

    @property
    def sort_key(self) -> tuple[Day, int]:
        return (self.date, self.part or 0)

    @property
    def ref(self) -> DigestRef:
        return DigestRef(self.id, self.date, self.part, len(self.notes))

    def published(self, tz: tzinfo) -> datetime:
        return self.ref.published(tz)

    def note_published(self, index: int, tz: tzinfo) -> datetime:
        return self.ref.note_published(index, tz)


@dataclass(frozen=True, slots=True)
class Digest(_Dated):
    """One day's digest (or one part of a day with several)."""

    id: str
    date: date
    part: int | None
    source: str
    notes: tuple[Note, ...]


@dataclass(frozen=True, slots=True)
class NoteHead:
    """A note without its text: what a build plans from (its lists, tags and keys). Only a
    job that renders the note reads its text, from its digest file (inputs.full_digest)."""

    title: str
    slug: str
    line: int
    authors: tuple[str, ...]
    tags: tuple[str, ...]
    hash: str  # of the whole note, as the archive holds it (state.note_hash)

    @property
    def ref(self) -> NoteRef:
        return NoteRef(self.slug, self.title, self.authors)


@dataclass(frozen=True, slots=True)
class DigestHead(_Dated):
    """A digest as a build plans from it: its notes' heads, and the key of its file's bytes
    (inputs: a hash of its name and bytes), by which its text is found again."""

    id: str
    date: date
    part: int | None
    source: str
    notes: tuple[NoteHead, ...]
    key: str


def _quick_to_unpickle(cls: type) -> None:
    """dataclasses gives a frozen class with slots a __setstate__ that looks its fields up
    again for every object; the parse cache unpickles every note's head each build."""
    names = tuple(f.name for f in fields(cls))
    set_field = object.__setattr__

    def __setstate__(self: object, state: tuple[object, ...]) -> None:
        for name, value in zip(names, state, strict=True):
            set_field(self, name, value)

    cls.__setstate__ = __setstate__  # type: ignore[attr-defined]


_quick_to_unpickle(NoteHead)
_quick_to_unpickle(DigestHead)


@dataclass(frozen=True, slots=True)
class Page:
    """Where one document of a list sits among its documents: number None for the main one
    (the newest items), n for the nth of the older ones, 1 the oldest."""

    number: int | None = None
    older: int | None = None  # the next older numbered document
    newer: int | None = None  # on a numbered one: the next newer numbered one (None: the main)
    total: int = 0  # items in the whole list, said on the main document


def paginate(items: Sequence[T], size: int) -> list[tuple[Page, Sequence[T]]]:
    """A list's documents, newest items first: the main one and, past two documents' worth,
    numbered ones of older items.

    Counted from the oldest item, document n holds the same `size` items whatever is added
    later, so a new item changes the main document (which holds `size` to 2 x `size` - 1
    items) and, once every `size` items, adds one: older ones never change again. `size` 0:
    one document of everything.
    """
    full = len(items) // size if size else 0
    if full < 2:
        return [(Page(total=len(items)), items)]
    oldest_first = items[::-1]
    older = full - 1  # numbered documents; the newest full chunk stays in the main one
    pages: list[tuple[Page, Sequence[T]]] = [
        (
            Page(number, number - 1 or None, number + 1 if number < older else None),
            oldest_first[(number - 1) * size : number * size][::-1],
        )
        for number in range(1, older + 1)
    ]
    pages.append((Page(None, older, None, len(items)), oldest_first[older * size :][::-1]))
    return pages


def digest_id(day: date, part: int | None) -> str:
    """`YYYY-MM-DD`, or `YYYY-MM-DD-N` for part N of a day."""
    return day.isoformat() if part is None else f"{day.isoformat()}-{part}"


AnyDigest = TypeVar("AnyDigest", Digest, DigestHead)


@dataclass(frozen=True, slots=True)
class Archive(Generic[AnyDigest]):
    """Every digest (whole, or as heads for a build), newest first, with tags in their
    display spelling."""

    digests: tuple[AnyDigest, ...]

    @property
    def notes(self) -> int:
        return sum(len(d.notes) for d in self.digests)

    def tags(self) -> dict[str, str]:
        """Tag key -> display spelling, for every tag in the archive, sorted by key."""
        found: dict[str, str] = {}
        for digest in self.digests:
            for note in digest.notes:
                for tag in note.tags:
                    found.setdefault(tag_key(tag), tag)
        return dict(sorted(found.items()))


def note_to_json(note: Note) -> dict[str, object]:
    return {
        "title": note.title,
        "slug": note.slug,
        "line": note.line,
        "authors": list(note.authors),
        "abstract": "\n".join(note.abstract),
        "commentary": {"ko": list(note.korean), "en": list(note.english)},
        "tags": list(note.tags),
    }


def digest_to_json(digest: Digest) -> dict[str, object]:
    return {
        "id": digest.id,
        "date": digest.date.isoformat(),
        "part": digest.part,
        "source": digest.source,
        "notes": [note_to_json(n) for n in digest.notes],
    }


def clean_note(note: Note) -> Note:
    """The note with every text field passed through clean_text (for notes not from the parser).

    A clean note (every note the parser makes) is returned as is, after one check in C.
    """
    fields = (note.title, *note.authors, *note.abstract, *note.korean, *note.english, *note.tags)
    if _is_clean("".join(fields)):
        return note
    return Note(
        clean_text(note.title),
        note.slug,
        note.line,
        tuple(map(clean_text, note.authors)),
        tuple(map(clean_text, note.abstract)),
        tuple(map(clean_text, note.korean)),
        tuple(map(clean_text, note.english)),
        tuple(map(clean_text, note.tags)),
    )
