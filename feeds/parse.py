"""Read digests: the plain-text format the author writes, into the model.

A digest is a date header followed by notes. Each note is a title line, an
authors line in parentheses, the abstract (lines without Hangul), the Korean
commentary (first through last line with Hangul), the English commentary (the
lines after it) and a line of #tags. Blank lines carry no meaning.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from .errors import ParseError, Problem
from .model import Digest, Note, clean_text, digest_id, tag_key, tag_problem

_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff]")
_DATE_HEADER = re.compile(r"(\d{4})\s*년\s*(\d{1,2})\s*월\s*(\d{1,2})\s*일(?:\s*\(\s*(\d+)\s*\))?")
# A name: a letter, then letters, periods, apostrophes and hyphens, with spaces only between
# them. Possessive runs: nothing is matched two ways, so a line cannot backtrack exponentially.
_NAME = r"[^\W\d_](?:[^\W\d_]++|[.'’\-]| ++(?=[^\W\d_]|[.'’\-]))*+"
_AUTHORS = re.compile(rf"\(\s*{_NAME}(?:\s*,\s*{_NAME})*\s*\)")
_TAG = re.compile(r"#([\w\-]+)")
_TAGS_LINE = re.compile(r"#\S*(?:\s+#\S*)*")
_SLUG_JUNK = re.compile(r"[^\w]+|_+")
_SLUG_MAX = 80

DATE_HEADER_FORMAT = '"YYYY년 M월 D일" (optionally followed by a part number " (N)")'


class Line(NamedTuple):
    number: int
    text: str


_new_line = partial(tuple.__new__, Line)  # Line._make without its Python-level call


class Parsed(NamedTuple):
    """A parsed digest and the warnings found on the way."""

    digest: Digest
    warnings: tuple[Problem, ...]


def has_hangul(text: str) -> bool:
    return not text.isascii() and _HANGUL.search(text) is not None


def parse_authors(text: str) -> tuple[str, ...] | None:
    """The names of an authors line `(Name, Name, …)`, or None when the line is not one."""
    if len(text) < 3 or text[0] != "(" or text[-1] != ")" or not _AUTHORS.fullmatch(text):
        return None
    return tuple(name.strip() for name in text[1:-1].split(","))


def is_tags_line(text: str) -> bool:
    """A line whose every word starts with `#` is meant as the tags line."""
    return _TAGS_LINE.fullmatch(text.strip()) is not None


def slugify(title: str) -> str:
    """A readable URL fragment for a title: lower case words joined by hyphens."""
    slug = _SLUG_JUNK.sub("-", title.casefold()).strip("-")
    if len(slug) > _SLUG_MAX:
        cut = slug.rfind("-", 0, _SLUG_MAX + 1)
        slug = slug[: cut if cut > 0 else _SLUG_MAX]
    return slug or "note"


@dataclass
class _Collector:
    source: str
    errors: list[Problem]
    warnings: list[Problem]

    def error(self, line: int | None, message: str) -> None:
        self.errors.append(Problem(message, self.source, line))

    def warn(self, line: int | None, message: str) -> None:
        self.warnings.append(Problem(message, self.source, line, "warning"))


def _lines(text: str) -> list[Line]:
    """The non-blank lines, stripped, cleaned (see clean_text) and NFC-normalized."""
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if not all(map(str.isprintable, lines)):  # a tab or a control character: rare
        text = clean_text(text)
        lines = text.split("\n")
    if not unicodedata.is_normalized("NFC", text):
        lines = unicodedata.normalize("NFC", text).split("\n")
    return list(map(_new_line, filter(itemgetter(1), enumerate(map(str.strip, lines), 1))))


def _parse_header(line: Line | None, out: _Collector) -> tuple[date, int | None] | None:
    if line is None:
        out.error(1, f"expected a date header {DATE_HEADER_FORMAT}, found an empty file")
        return None
    match = _DATE_HEADER.fullmatch(line.text)
    if match is None:
        out.error(line.number, f'expected a date header {DATE_HEADER_FORMAT}, found "{line.text}"')
        return None
    year, month, day, part = match.groups()
    try:
        day_ = date(int(year), int(month), int(day))
    except ValueError:
        out.error(line.number, f'"{line.text}" is not a date that exists')
        return None
    if part is not None and int(part) < 1:
        out.error(line.number, f'the part number in "{line.text}" must be 1 or more')
        return None
    return day_, None if part is None else int(part)


def _parse_tags(line: Line, out: _Collector) -> tuple[str, ...]:
    tags: dict[str, str] = {}
    for word in line.text.split():
        match = _TAG.fullmatch(word)
        if match is None:
            out.error(
                line.number,
                f'expected tags "#tag #tag", found "{word}": '
                'a tag is letters, digits, "-" and "_" after one "#"',
            )
            continue
        problem = tag_problem(match[1])
        if problem is not None:
            out.error(line.number, f'the tag "{word}" cannot name a tag page or feed: {problem}')
            continue
        tags.setdefault(tag_key(match[1]), match[1])
    return tuple(tags.values())


def _starts_note(authors: list[tuple[str, ...] | None], tags: list[bool], i: int) -> bool:
    """A title line followed by an authors line: the next note, recognisable without tags."""
    return (
        i + 1 < len(authors) and authors[i + 1] is not None and authors[i] is None and not tags[i]
    )


def _split_body(body: list[str]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Abstract, Korean commentary and English commentary, by where the Hangul lines are."""
    hangul = [i for i, text in enumerate(body) if has_hangul(text)]
    if not hangul:
        # Without Hangul there is no boundary to go by: the first line is taken for the abstract.
        return tuple(body[:1]), (), tuple(body[1:])
    first, last = hangul[0], hangul[-1]
    return tuple(body[:first]), tuple(body[first : last + 1]), tuple(body[last + 1 :])


def _parse_notes(lines: list[Line], out: _Collector) -> list[Note]:
    notes: list[Note] = []
    first_title_line: dict[str, int] = {}
    used_slugs: set[str] = set()
    authors_at = [
        parse_authors(line.text) if line.text[0] == "(" and line.text[-1] == ")" else None
        for line in lines
    ]
    tags_at = [line.text[0] == "#" and is_tags_line(line.text) for line in lines]
    i = 0
    while i < len(lines):
        title = lines[i]
        if tags_at[i] or authors_at[i] is not None:
            what = "a tags line" if tags_at[i] else "an authors line"
            out.error(
                title.number,
                f'expected the title line of a note, found {what} "{title.text}" '
                "that belongs to no note",
            )
            i += 1
            continue
        i += 1
        authors: tuple[str, ...] = ()
        if i < len(lines) and (names := authors_at[i]) is not None:
            authors = names
            i += 1
        else:
            found = f'"{_clip(lines[i].text)}"' if i < len(lines) else "the end of the file"
            out.warn(
                lines[i].number if i < len(lines) else title.number,
                f'expected an authors line "(Name, Name, …)" after the title "{_clip(title.text)}", '
                f"found {found}",
            )
        body: list[str] = []
        tags: tuple[str, ...] | None = None
        while i < len(lines):
            if tags_at[i]:
                tags = _parse_tags(lines[i], out)
                i += 1
                break
            if _starts_note(authors_at, tags_at, i):
                break
            body.append(lines[i].text)
            i += 1
        if not authors and not body and tags is None:
            out.error(
                title.number,
                f'"{_clip(title.text)}" cannot be placed in a note: expected a title line '
                'followed by an authors line "(Name, Name, …)", the abstract, the commentary '
                "and a tags line",
            )
            continue
        if tags is None:
            where = f' before the next note "{_clip(lines[i].text)}"' if i < len(lines) else ""
            out.warn(title.number, f'the note "{_clip(title.text)}" has no tags line{where}')
        abstract, korean, english = _split_body(body)
        if not abstract:
            out.warn(title.number, f'the note "{_clip(title.text)}" has no abstract')
        if not korean:
            out.warn(title.number, f'the note "{_clip(title.text)}" has no Korean commentary')
        if not english:
            out.warn(title.number, f'the note "{_clip(title.text)}" has no English commentary')
        slug = base = slugify(title.text)
        n = 2
        while slug in used_slugs:
            slug = f"{base}-{n}"
            n += 1
        used_slugs.add(slug)
        if title.text in first_title_line:
            out.warn(
                title.number,
                f'the title "{_clip(title.text)}" already appears at line '
                f"{first_title_line[title.text]}; this note gets the anchor #{slug}",
            )
        first_title_line.setdefault(title.text, title.number)
        notes.append(
            Note(title.text, slug, title.number, authors, abstract, korean, english, tags or ())
        )
    return notes


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def parse_digest(text: str, source: str) -> Parsed:
    """Parse one digest's text. Raises ParseError carrying every error found in it."""
    out = _Collector(source, [], [])
    lines = _lines(text)
    header = _parse_header(lines[0] if lines else None, out)
    notes = _parse_notes(lines[1:], out) if lines else []
    if lines and not notes and not out.errors:
        out.error(lines[0].number, "the digest has no notes after its date header")
    if out.errors or header is None:
        raise ParseError.from_problems(out.errors)
    day, part = header
    digest = Digest(digest_id(day, part), day, part, source, tuple(notes))
    return Parsed(digest, tuple(out.warnings))


def decode_digest(data: bytes, source: str) -> str:
    """UTF-8 text of a digest file (a BOM is allowed). Raises ParseError at the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(
            f"expected UTF-8 text, found the byte 0x{data[exc.start]:02x} "
            f"at byte offset {exc.start}",
            source,
            line,
        ) from None


def format_digest(digest: Digest) -> str:
    """The digest written back in the format parse_digest reads."""
    header = f"{digest.date.year}년 {digest.date.month}월 {digest.date.day}일"
    if digest.part is not None:
        header += f" ({digest.part})"
    lines = [header]
    for note in digest.notes:
        lines.append(note.title)
        if note.authors:
            lines.append(f"({', '.join(note.authors)})")
        lines += [*note.abstract, *note.korean, *note.english]
        if note.tags:
            lines.append(" ".join(f"#{tag}" for tag in note.tags))
    return "\n".join(lines) + "\n"


def parse_file(path: Path) -> Parsed:
    """Read and parse one digest file. Raises OSError or ParseError."""
    source = str(path)
    return parse_digest(decode_digest(path.read_bytes(), source), source)
