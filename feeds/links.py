"""Links in the text of a note: its URLs and arXiv ids, and the one link to its paper.

A URL is `http(s)://` up to a space, a quote, an angle bracket or Hangul; punctuation that ends
a sentence and a closing bracket it did not open stay outside it. `arXiv:2411.01234` and a
bare new-style id (`2411.01234`, `2411.01234v2`) link to arxiv.org.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple
from urllib.parse import quote_plus

from markupsafe import Markup, escape

_URL = re.compile(r"https?://[^\s<>\"'\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]+")
_ARXIV_ID = r"(?:0[7-9]|[1-9]\d)(?:0[1-9]|1[0-2])\.\d{4,5}(?:v\d+)?"
_ARXIV = re.compile(rf"\barXiv:\s?({_ARXIV_ID})\b|(?<![\w.])({_ARXIV_ID})(?![\w.]*\d)")
_ARXIV_HINT = re.compile(r"\.\d{4}")
"""What every arXiv id holds: a quick search for it spares most texts the slow one (_ARXIV
looks behind and ahead at every position)."""
_TRAILING = ".,;:!?…'\"”’"
_PAIRS = {")": "(", "]": "[", "}": "{"}
_PAPER_HOSTS = re.compile(
    r"https?://(?:www\.)?(?:arxiv\.org/(?:abs|pdf)/|openreview\.net/(?:forum|pdf)|"
    r"aclanthology\.org/|(?:dx\.)?doi\.org/10\.)",
    re.IGNORECASE,
)
DEFAULT_PAPER_SEARCH = "https://arxiv.org/search/?query={title}&searchtype=title"


class Piece(NamedTuple):
    """A stretch of text, and where it links (None: plain text)."""

    text: str
    href: str | None


def _trim(url: str) -> str:
    """The URL without what ends the sentence around it: trailing punctuation, and closing
    brackets that it did not open itself (`(https://a.org/x_(y))` keeps its own)."""
    while url:
        last = url[-1]
        if last in _TRAILING or (last in _PAIRS and url.count(_PAIRS[last]) < url.count(last)):
            url = url[:-1]
        else:
            break
    return url


def pieces(text: str) -> Iterator[Piece]:
    """The text cut into plain stretches and links, in order; joined, the text again."""
    found: list[tuple[int, int, str]] = []
    for match in _URL.finditer(text):
        url = _trim(match[0])
        if len(url) > len("https://"):
            found.append((match.start(), match.start() + len(url), url))
    taken = [(start, end) for start, end, _ in found]
    for match in _ARXIV.finditer(text) if _ARXIV_HINT.search(text) else ():
        if not any(start <= match.start() < end for start, end in taken):
            arxiv_id = match[1] or match[2]
            found.append((match.start(), match.end(), f"https://arxiv.org/abs/{arxiv_id}"))
    at = 0
    for start, end, href in sorted(found):
        if start < at:
            continue
        if start > at:
            yield Piece(text[at:start], None)
        yield Piece(text[start:end], href)
        at = end
    if at < len(text):
        yield Piece(text[at:], None)


def _may_link(text: str) -> bool:
    """The text may hold a URL or an arXiv id (pieces finds none in any other)."""
    return "://" in text or _ARXIV_HINT.search(text) is not None


def linkify(text: str) -> Markup:
    """The text as HTML (escaped), its URLs and arXiv ids as links."""
    if not _may_link(text):
        return escape(text)
    return Markup("").join(
        Markup('<a href="{}">{}</a>').format(p.href, p.text) if p.href else escape(p.text)
        for p in pieces(text)
    )


def paper_url(title: str, texts: Iterable[str], search: str = DEFAULT_PAPER_SEARCH) -> str:
    """The paper a note is about: the first arXiv, OpenReview, ACL Anthology or DOI link in its
    text, or a search for its title."""
    for text in filter(_may_link, texts):
        for piece in pieces(text):
            if piece.href and _PAPER_HOSTS.match(piece.href):
                return piece.href
    return search.replace("{title}", quote_plus(title))
