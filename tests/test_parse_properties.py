"""Properties of the parser over generated input."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.archive import load_archive
from feeds.corpus import format_digest, generate
from feeds.errors import ParseError
from feeds.model import Digest, Note, digest_id
from feeds.names import parse_authors
from feeds.parse import has_hangul, parse_digest, slugify

LINE_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_any_text_parses_or_raises_parse_error(text):
    try:
        parse_digest(text, "x.txt")
    except ParseError as exc:
        assert exc.problems and all(p.source == "x.txt" for p in exc.problems)


@settings(max_examples=200)
@given(
    st.lists(
        st.sampled_from(
            ["2024년 11월 7일", "(A B, C D)", "#tag", "Title", "한국어", "English", "", "(x)"]
        ),
        max_size=20,
    )
)
def test_line_soup_parses_or_raises_parse_error(lines):
    with contextlib.suppress(ParseError):
        parse_digest("\n".join(lines), "x.txt")


def _words(alphabet: str, min_size: int = 1) -> st.SearchStrategy[str]:
    word = st.text(alphabet=alphabet, min_size=1, max_size=8)
    return st.lists(word, min_size=min_size, max_size=6).map(" ".join)


ENGLISH = _words("abcdefghijklmnopqrstuvwxyzABC0123456789.,:;!?'\"<>&()")
KOREAN = st.tuples(_words("가나다라마바사아자차카타파하"), ENGLISH).map(lambda t: f"{t[0]} {t[1]}")
NAME = (
    _words("abcdefgXYZéñ.'-")
    .map(lambda n: " ".join(w[:1].upper() + w[1:] for w in n.split()))
    .filter(lambda n: n[0].isalpha() and parse_authors(f"({n})") == (n,))
)
TAG = st.text(alphabet="abcxyz019-_가나", min_size=1, max_size=10).filter(lambda t: t.strip("-_"))


@st.composite
def notes(draw) -> Note:
    title = draw(ENGLISH.filter(lambda t: not t.startswith(("#", "(")) and t.strip() == t))
    english = tuple(draw(st.lists(ENGLISH, min_size=1, max_size=3)))
    return Note(
        title=title,
        slug="",
        line=0,
        authors=tuple(draw(st.lists(NAME, min_size=1, max_size=4))),
        abstract=(draw(ENGLISH),),
        korean=tuple(draw(st.lists(KOREAN, min_size=1, max_size=3))),
        english=english,
        tags=tuple(dict.fromkeys(draw(st.lists(TAG, min_size=1, max_size=3)))),
    )


def _usable(note: Note) -> bool:
    lines = [*note.abstract, *note.english]
    return (
        all(not has_hangul(x) and not x.startswith("#") for x in lines)
        and not (note.abstract[0].startswith("(") and note.abstract[0].endswith(")"))
        and not any(x.startswith("(") and x.endswith(")") for x in note.english)
        and len({t.casefold() for t in note.tags}) == len(note.tags)
    )


@settings(
    max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(
    st.lists(notes().filter(_usable), min_size=1, max_size=4),
    st.dates(date(1990, 1, 1), date(2100, 1, 1)),
    st.none() | st.integers(1, 9),
)
def test_format_then_parse_round_trips(note_list, day, part):
    slugs: list[str] = []
    for note in note_list:
        slug = base = slugify(note.title)
        n = 2
        while slug in slugs:
            slug, n = f"{base}-{n}", n + 1
        slugs.append(slug)
    digest = Digest(
        digest_id(day, part),
        day,
        part,
        "x.txt",
        tuple(replace(n, slug=s) for n, s in zip(note_list, slugs, strict=True)),
    )
    parsed = parse_digest(format_digest(digest), "x.txt").digest
    assert (parsed.id, parsed.date, parsed.part) == (digest.id, digest.date, digest.part)
    assert [replace(n, line=0) for n in parsed.notes] == list(digest.notes)


def test_corpus_is_deterministic_and_parses_cleanly(tmp_path):
    a = generate(tmp_path / "a", 60, seed=3)
    b = generate(tmp_path / "b", 60, seed=3)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    loaded = load_archive(tmp_path / "a")
    assert loaded.warnings == ()
    counts = [len(d.notes) for d in loaded.archive.digests]
    assert len(counts) == 60 and min(counts) >= 5 and max(counts) <= 20
    assert any(d.part for d in loaded.archive.digests)
    raw = [p.read_bytes() for p in generate(tmp_path / "c", 200, seed=1)]
    assert any(r.startswith(b"\xef\xbb\xbf") for r in raw)
    assert any(b"\r\n" in r for r in raw)
    assert load_archive(tmp_path / "c").warnings == ()
