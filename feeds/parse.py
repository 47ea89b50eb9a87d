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
from .names import authors_problem, parse_authors

_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff]")
_DATE_HEADER = re.compile(r"(\d{4})\s*년\s*(\d{1,2})\s*월\s*(\d{1,2})\s*일(?:\s*\(\s*(\d+)\s*\))?")
_TAG = re.compile(r"#([\w\-]+)")
_TAGS_LINE = re.compile(r"#\S*(?:\s+#\S*)*")
_SLUG_JUNK = re.compile(r"[^\w]+|_+")
_SLUG_MAX = 80
MAX_PART = 23
"""Part N of a day is dated N hours after its midnight: parts stay on their own day."""
YEARS = range(1900, 3000)
MAX_TAGS = 50
"""Tags per note: each tag is a page and three feeds per language that carry the note."""

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

    def warn(self, line: int | None, message: str, kind: str) -> None:
        self.warnings.append(Problem(message, self.source, line, "warning", kind))


def _lines(text: str) -> list[Line]:
    """The non-blank lines, stripped, cleaned (see clean_text) and NFC-normalized."""
    text = text.removeprefix("\ufeff")
    if "\r" in text:  # CRLF, or CR alone (old Mac files): both end a line
        text = text.replace("\r\n", "\n").replace("\r", "\n")
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
    shown = _clip(line.text)
    if match is None:
        out.error(line.number, f'expected a date header {DATE_HEADER_FORMAT}, found "{shown}"')
        return None
    year, month, day, part = match.groups()
    try:
        day_ = date(int(year), int(month), int(day))
    except ValueError:
        out.error(line.number, f'"{shown}" is not a date that exists')
        return None
    if day_.year not in YEARS:
        out.error(
            line.number,
            f'expected a year from {YEARS.start} to {YEARS.stop - 1}, found {day_.year} in "{shown}"',
        )
        return None
    if part is not None and not 1 <= int(part) <= MAX_PART:
        out.error(
            line.number,
            f'expected a part number from 1 to {MAX_PART}, found {_clip(part, 12)} in "{shown}"',
        )
        return None
    return day_, None if part is None else int(part)


def _parse_tags(line: Line, out: _Collector) -> tuple[str, ...]:
    tags: dict[str, str] = {}
    for word in line.text.split():
        match = _TAG.fullmatch(word)
        if match is None:
            out.error(
                line.number,
                f'expected tags "#tag #tag", found "{_clip(word)}": '
                'a tag is letters, digits, "-" and "_" after one "#"',
            )
            continue
        tag = match[1]
        problem = None if tag.isascii() and tag.strip("-_") else tag_problem(tag)
        if problem is not None:
            out.error(
                line.number, f'the tag "{_clip(word)}" cannot name a tag page or feed: {problem}'
            )
            continue
        tags.setdefault(tag_key(tag), tag)
    if len(tags) > MAX_TAGS:
        out.error(line.number, f"expected at most {MAX_TAGS} tags on a note, found {len(tags)}")
    return tuple(tags.values())


def could_be_title(text: str) -> bool:
    """A line that may start a note inside another: a paper's title has no Hangul and does not
    end like a sentence (a commentary line followed by a parenthesised one must not)."""
    return not has_hangul(text) and not text.endswith((".", "。", ":"))


class _Body(NamedTuple):
    abstract: tuple[str, ...]
    korean: tuple[str, ...]
    english: tuple[str, ...]
    stray: Line | None  # a line without Hangul inside the Korean commentary
    span: tuple[int, int]  # the Korean commentary's first and last line numbers


def _split_body(body: list[Line]) -> _Body:
    """Abstract, Korean commentary and English commentary, by where the Hangul lines are."""
    texts = list(map(itemgetter(1), body))
    hangul = [i for i, text in enumerate(texts) if has_hangul(text)]
    if not hangul:
        # Without Hangul there is no boundary to go by: the first line is taken for the abstract.
        return _Body(tuple(texts[:1]), (), tuple(texts[1:]), None, (0, 0))
    first, last = hangul[0], hangul[-1]
    stray = None
    if last - first + 1 > len(hangul):  # English inside: a title that lost its note, perhaps
        inside = [line for line in body[first:last] if not has_hangul(line.text)]
        stray = next((line for line in inside if could_be_title(line.text)), inside[0])
    return _Body(
        tuple(texts[:first]),
        tuple(texts[first : last + 1]),
        tuple(texts[last + 1 :]),
        stray,
        (body[first].number, body[last].number),
    )


class _Notes:
    """The notes of a digest, line by line (after its date header)."""

    def __init__(self, lines: list[Line], out: _Collector):
        self.lines, self.out = lines, out
        self.authors_at = [
            parse_authors(line.text) if line.text[0] == "(" and line.text[-1] == ")" else None
            for line in lines
        ]
        self.tags_at = [line.text[0] == "#" and is_tags_line(line.text) for line in lines]
        self.notes: list[Note] = []
        self.first_title_line: dict[str, int] = {}
        self.slugs: set[str] = set()
        self.next_suffix: dict[str, int] = {}

    def starts_note(self, i: int) -> bool:
        """A line that could be a title, followed by an authors line: the next note,
        recognisable without the tags line that should have ended the one before."""
        authors, tags = self.authors_at, self.tags_at
        return (
            i + 1 < len(authors)
            and authors[i + 1] is not None
            and authors[i] is None
            and not tags[i]
            and could_be_title(self.lines[i].text)
        )

    def parse(self) -> list[Note]:
        i = 0
        while i < len(self.lines):
            i = self.note(i)
        return self.notes

    def note(self, i: int) -> int:
        """Read the note whose title is line i; returns the line after it."""
        lines, out = self.lines, self.out
        title = lines[i]
        if self.tags_at[i] or self.authors_at[i] is not None:
            what = "a tags line" if self.tags_at[i] else "an authors line"
            out.error(
                title.number,
                f'expected the title line of a note, found {what} "{_clip(title.text)}" '
                "that belongs to no note",
            )
            return i + 1
        i += 1
        authors: tuple[str, ...] = ()
        after_title = lines[i] if i < len(lines) else None
        if i < len(lines) and (names := self.authors_at[i]) is not None:
            authors, i = names, i + 1
        body: list[Line] = []
        tags: tuple[str, ...] | None = None
        while i < len(lines):
            if self.tags_at[i]:
                tags = _parse_tags(lines[i], out)
                i += 1
                break
            if self.starts_note(i):
                break
            body.append(lines[i])
            i += 1
        if not authors and not body and tags is None:
            self.misplaced(title, lines[i] if i < len(lines) else None)
            return i
        if not authors:
            self.no_authors(title, after_title)
        if tags is None and i < len(lines):
            out.warn(
                title.number,
                f'the note "{_clip(title.text)}" has no tags line: line {lines[i].number} '
                f'"{_clip(lines[i].text)}" starts the next note (an authors line follows it)',
                "split",
            )
        elif tags is None:
            out.warn(title.number, f'the note "{_clip(title.text)}" has no tags line', "no-tags")
        self.add(title, authors, _split_body(body), tags or ())
        return i

    def no_authors(self, title: Line, found: Line | None) -> None:
        text = "the end of the file" if found is None else f'"{_clip(found.text)}"'
        why = ""
        if found is not None and found.text[0] == "(" and found.text[-1] == ")":
            why = f": {authors_problem(found.text)}"
        self.out.warn(
            found.number if found is not None else title.number,
            f'expected an authors line "(Name, Name, …)" after the title "{_clip(title.text)}", '
            f"found {text}{why}",
            "no-authors",
        )

    def misplaced(self, line: Line, following: Line | None) -> None:
        """A line that is neither a note's title (nothing of a note follows it) nor in one."""
        if following is not None:
            near = (
                f'it would belong to the note "{_clip(following.text)}" (line {following.number})'
            )
        elif self.notes:
            last = self.notes[-1]
            near = f'it comes after the note "{_clip(last.title)}" (line {last.line})'
        else:
            near = "no note follows it"
        self.out.error(
            line.number,
            f'"{_clip(line.text)}" cannot be placed in a note: expected a title line followed by '
            'an authors line "(Name, Name, …)", the abstract, the commentary and a tags line; '
            + near,
        )

    def add(
        self, title: Line, authors: tuple[str, ...], body: _Body, tags: tuple[str, ...]
    ) -> None:
        out, shown = self.out, _clip(title.text)
        if body.stray is not None:
            out.warn(
                body.stray.number,
                f'line {body.stray.number} "{_clip(body.stray.text)}" has no Hangul but sits in '
                f"the Korean commentary (lines {body.span[0]}–{body.span[1]}) of the note "
                f'"{shown}" (line {title.number}): if another note starts there, end this one '
                "with a tags line or give that one an authors line",
                "merge",
            )
        for part, what in ((body.abstract, "abstract"), (body.korean, "Korean commentary")):
            if not part:
                out.warn(
                    title.number,
                    f'the note "{shown}" has no {what}',
                    f"no-{what.split()[0].lower()}",
                )
        if not body.english:
            out.warn(title.number, f'the note "{shown}" has no English commentary', "no-english")
        slug = self.unique_slug(slugify(title.text))
        if title.text in self.first_title_line:
            out.warn(
                title.number,
                f'the title "{shown}" already appears at line '
                f"{self.first_title_line[title.text]}; this note gets the anchor #{slug}",
                "duplicate-title",
            )
        self.first_title_line.setdefault(title.text, title.number)
        self.notes.append(
            Note(
                title.text,
                slug,
                title.number,
                authors,
                body.abstract,
                body.korean,
                body.english,
                tags,
            )
        )

    def unique_slug(self, base: str) -> str:
        """base, or base-2, base-3, …: the first not taken (found in constant time)."""
        slug = base
        n = self.next_suffix.get(base, 2)
        while slug in self.slugs:
            slug = f"{base}-{n}"
            n += 1
        self.next_suffix[base] = n
        self.slugs.add(slug)
        return slug


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def parse_digest(text: str, source: str) -> Parsed:
    """Parse one digest's text. Raises ParseError carrying every error found in it."""
    out = _Collector(source, [], [])
    lines = _lines(text)
    header = _parse_header(lines[0] if lines else None, out)
    notes = _Notes(lines[1:], out).parse() if lines else []
    if lines and not notes and not out.errors:
        out.error(lines[0].number, "the digest has no notes after its date header")
    if out.errors or header is None:  # the warnings too: a file's problems all show at once
        raise ParseError.from_problems(sorted([*out.errors, *out.warnings], key=_by_line))
    day, part = header
    digest = Digest(digest_id(day, part), day, part, source, tuple(notes))
    return Parsed(digest, tuple(out.warnings))


def _by_line(problem: Problem) -> int:
    return problem.line or 0


def decode_digest(data: bytes, source: str) -> str:
    """UTF-8 text of a digest file (a BOM is allowed). Raises ParseError at the first bad byte."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise ParseError(
            f"expected text, found a NUL byte at byte offset {nul} (is it a binary file?)",
            source,
            data.count(b"\n", 0, nul) + 1,
        )
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


def parse_file(path: Path) -> Parsed:
    """Read and parse one digest file. Raises OSError or ParseError."""
    source = str(path)
    return parse_digest(decode_digest(path.read_bytes(), source), source)
