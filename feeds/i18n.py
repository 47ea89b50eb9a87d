"""Words and dates the way each language writes them."""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import date

from .links import pieces
from .model import Lang

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
    },
    "en": {
        "language_name": "English",
        "other_language": "한국어",
        "tag_feed_title": "{title} · #{tag}",
        "tag_feed_description": "Notes tagged #{tag}",
        "authors": "Authors",
        "abstract": "Abstract",
        "tags": "Tags",
        "et_al": "et al.",
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


def _wrap(text: str, width: int, indent: str) -> str:
    base = display_width(indent)
    if text.isascii() and width - base >= 1:  # one column per character: let a regex find lines
        found = _ascii_lines(width - base).findall(" ".join(text.split()))
        return "\n".join(indent + line for line in found)
    lines: list[str] = []
    words: list[str] = []
    used = base
    for word in text.split():
        size = len(word) if word.isascii() else _word_width(word)
        if words and used + 1 + size > width:
            lines.append(indent + " ".join(words))
            words, used = [], base
        used += size + (1 if words else 0)
        words.append(word)
    if words:
        lines.append(indent + " ".join(words))
    return "\n".join(lines)
