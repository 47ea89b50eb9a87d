"""Words and dates the way each language writes them."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from datetime import date

from .links import pieces
from .model import Lang, clean_text

_MONTHS_EN = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

TEXT: dict[Lang, dict[str, str]] = {
    "ko": {
        "language_name": "한국어",
        "other_language": "English",
        "tag_feed_title": "{title} · #{tag}",
        "tag_feed_description": "#{tag} 태그가 달린 노트",
        "authors": "저자",
        "abstract": "초록",
        "tags": "태그",
        "et_al": "외",
        "read_abstract": "초록 읽기",
        "view_in_browser": "브라우저에서 보기",
        "feeds": "피드",
        "unsubscribe": "구독 해지",
        "preferences": "구독 설정·해지",
        "why": "{title} 뉴스레터를 구독하셨기 때문에 이 메일을 받으셨습니다.",
        "subject": "{title} · {date}",
        "preheader": "이번 호의 논문: {titles}",
        "archive": "전체 목록",
        "all_tags": "모든 태그",
        "notes_count": "노트 {n}개",
        "latest": "최근 다이제스트",
        "subscribe": "구독",
        "newsletter": "이메일 뉴스레터",
        "not_found": "페이지를 찾을 수 없습니다",
        "tagged": "#{tag} 태그가 달린 노트",
        "older_notes": "이전 노트",
        "newer_notes": "최근 노트",
        "home": "처음으로",
        "commentary_in_other": "영어 코멘트",
        "paper": "논문",
        "digest_feed_title": "{title} · 다이제스트",
        "digest_feed_description": "하루 한 건: 다이제스트 전체",
        "feed_notes": "노트 (한 건에 노트 하나)",
        "feed_digests": "다이제스트 (하루 한 건)",
        "feed_tag": "#{tag} 노트",
        "search": "검색",
        "search_heading": "노트 검색",
        "search_hint": "제목, 저자, 코멘트, 태그의 단어로 찾습니다.",
        "search_needs_js": "검색에는 JavaScript가 필요합니다. 전체 목록과 태그에서도 찾을 수 있습니다.",
        "digest_description": "{date} 다이제스트, 노트 {n}개: {titles}",
        "archive_description": "다이제스트 {n}개, 최근 {date}",
        "tags_description": "태그 {n}개: {tags}",
        "tag_description": "#{tag} 노트 {n}개: {titles}",
        "home_description": "최근 {date}: {titles}",
        "more_notes": "외 {n}개",
    },
    "en": {
        "language_name": "English",
        "other_language": "한국어",
        "tag_feed_title": "{title} · #{tag}",
        "tag_feed_description": "Notes tagged #{tag}",
        "authors": "Authors",
        "abstract": "Abstract",
        "tags": "Tags",
        "et_al": "et\u00a0al.",
        "read_abstract": "Read the abstract",
        "view_in_browser": "View in browser",
        "feeds": "Feeds",
        "unsubscribe": "Unsubscribe",
        "preferences": "Preferences or unsubscribe",
        "why": "You receive this because you subscribed to the {title} newsletter.",
        "subject": "{title} · {date}",
        "preheader": "In this issue: {titles}",
        "archive": "Archive",
        "all_tags": "All tags",
        "notes_count": "{n} notes",
        "latest": "Latest digests",
        "subscribe": "Subscribe",
        "newsletter": "Email newsletter",
        "not_found": "Page not found",
        "tagged": "Notes tagged #{tag}",
        "older_notes": "Older notes",
        "newer_notes": "Newer notes",
        "home": "Home",
        "commentary_in_other": "Commentary in Korean",
        "paper": "Paper",
        "digest_feed_title": "{title} · Digests",
        "digest_feed_description": "One item a day: the whole digest",
        "feed_notes": "Notes (one item per note)",
        "feed_digests": "Digests (one item a day)",
        "feed_tag": "#{tag} notes",
        "search": "Search",
        "search_heading": "Search the notes",
        "search_hint": "Finds notes by words of their title, authors, commentary or tags.",
        "search_needs_js": "Search needs JavaScript. The archive and the tags list every note.",
        "digest_description": "Digest of {date}, {n} notes: {titles}",
        "archive_description": "{n} digests, the newest of {date}",
        "tags_description": "{n} tags: {tags}",
        "tag_description": "{n} notes tagged #{tag}: {titles}",
        "home_description": "Latest, {date}: {titles}",
        "more_notes": "and {n} more",
    },
}


def format_date(day: date, lang: Lang) -> str:
    """`2024년 11월 7일` or `November 7, 2024`."""
    if lang == "ko":
        return f"{day.year}년 {day.month}월 {day.day}일"
    return f"{_MONTHS_EN[day.month - 1]} {day.day}, {day.year}"


def format_digest_date(day: date, part: int | None, lang: Lang) -> str:
    """The date of a digest as readers see it, with its part number when a day has several."""
    text = format_date(day, lang)
    return text if part is None else f"{text} ({part})"


def format_month(day: date, lang: Lang) -> str:
    """`2024년 11월` or `November 2024`."""
    if lang == "ko":
        return f"{day.year}년 {day.month}월"
    return f"{_MONTHS_EN[day.month - 1]} {day.year}"


def short_authors(authors: tuple[str, ...], lang: Lang) -> str:
    """The first three names, then "et al." (외), held to the last name by a no-break space."""
    if len(authors) <= 3:
        return ", ".join(authors)
    return ", ".join(authors[:3]) + "\u00a0" + TEXT[lang]["et_al"]


def display_width(text: str) -> int:
    """Columns a text takes in a monospaced terminal or mail client: Hangul and CJK count two."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


# Words recur (particles, terms), and a word's width costs a Python loop over its characters.
_word_width = functools.lru_cache(maxsize=1 << 16)(display_width)


@functools.lru_cache(maxsize=64)
def _ascii_lines(room: int) -> re.Pattern[str]:
    # The longest run of whole words that fits in `room` columns, or one word that alone does not.
    return re.compile(rf"\S.{{0,{room - 1}}}(?= |$)|\S+")


def wrap(text: str, width: int = 72, indent: str = "") -> str:
    """Wrap at spaces to `width` display columns; Korean is wrapped between words, never inside.
    A URL stands whole on a line of its own, where mail clients can follow it."""
    if "://" in text:
        parts = []
        for piece in pieces(text):
            if piece.href and "://" in piece.text:
                parts.append(indent + piece.text)
            elif piece.text.strip():
                parts.append(_wrap(piece.text, width, indent))
        return "\n".join(parts)
    return _wrap(text, width, indent)


_ASCII_SPACE = re.compile(r"[ \t\n\r\f\v]+")


def _wrap(text: str, width: int, indent: str) -> str:
    base = display_width(indent)
    if text.isascii() and width - base >= 1:  # one column per character: let a regex find lines
        found = _ascii_lines(width - base).findall(" ".join(text.split()))
        return "\n".join(indent + line for line in found)
    lines: list[str] = []
    words: list[str] = []
    used = base
    for word in _ASCII_SPACE.split(text):  # a no-break space holds its words together
        if not word:
            continue
        size = len(word) if word.isascii() else _word_width(word)
        if words and used + 1 + size > width:
            lines.append(indent + " ".join(words))
            words, used = [], base
        used += size + (1 if words else 0)
        words.append(word)
    if words:
        lines.append(indent + " ".join(words))
    return "\n".join(lines)


LOCALES: dict[Lang, str] = {"ko": "ko_KR", "en": "en_US"}
"""og:locale of each language."""

DESCRIPTION_CHARS = 200
"""A page's description is cut here (previews show about 150 to 200 characters)."""


def shortened(text: str) -> str:
    """A page description of at most DESCRIPTION_CHARS, cut at a word."""
    if len(text) <= DESCRIPTION_CHARS:
        return text
    cut = text[: DESCRIPTION_CHARS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[DESCRIPTION_CHARS // 2 :] else cut) + "…"


def first_titles(titles: Sequence[str], lang: Lang, shown: int = 3) -> str:
    """The first titles, then how many more."""
    listed = "; ".join(clean_text(t) for t in titles[:shown])
    more = len(titles) - shown
    return listed + (f"; {TEXT[lang]['more_notes'].format(n=more)}" if more > 0 else "")
