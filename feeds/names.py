"""The authors line of a note: `(Name, Name, …)`, told apart from a parenthesised sentence.

A name is letters, with periods, apostrophes and hyphens, and spaces between words; the usual
affiliation markers after it (`*`, `†`, `‡`, `§`, `¶`, `‖`, superscript digits) are dropped.
A line that reads like a sentence is not an authors line: a name that ends in a period that
is not an initial's, a name of more than seven words, a single name whose words are not
capitalised (`(See the appendix for details.)`), or Hangul words that make a phrase.
"""

from __future__ import annotations

import re
from itertools import repeat

# A name: a letter, then letters, periods, apostrophes and hyphens, with spaces only between
# them. Possessive runs: nothing is matched two ways, so a line cannot backtrack exponentially.
_NAME_PATTERN = r"[^\W\d_](?:[^\W\d_]++|[.'’\-]| ++(?=[^\W\d_]|[.'’\-]))*+"
_NAME = re.compile(_NAME_PATTERN)
# The common line, checked in C: names without markers, none too long, not ending like a sentence.
_PLAIN_LINE = re.compile(rf"\(\s*{_NAME_PATTERN}(?:\s*,\s*{_NAME_PATTERN})+\s*\)")

MARKERS = "*†‡§¶‖⁰¹²³⁴⁵⁶⁷⁸⁹"
_HANGUL_WORD = re.compile("[\uac00-\ud7a3]")
_PARTICLES = frozenset(
    [
        "al",
        "bin",
        "bint",
        "da",
        "das",
        "de",
        "del",
        "della",
        "dem",
        "den",
        "der",
        "des",
        "di",
        "do",
        "dos",
        "du",
        "el",
        "la",
        "le",
        "st",
        "ten",
        "ter",
        "van",
        "von",
        "y",
        "zu",
    ]
)
_SUFFIXES = frozenset(["jr.", "sr.", "st."])
MAX_WORDS = 7


def _name_problem(name: str, alone: bool) -> str | None:
    """Why a name (markers already dropped) cannot be one, or None."""
    if not name:
        return "a name is empty"
    if not _NAME.fullmatch(name):
        odd = next((c for c in name if not (c.isalpha() or c in ".'’- ")), None)
        if odd is not None and odd.isdigit():
            return f'the name "{name}" holds a digit'
        if odd is not None:
            return f'the name "{name}" holds "{odd}", which names do not'
        return f'"{name}" does not start with a letter'
    words = name.split()
    if len(words) > MAX_WORDS:
        return f'"{name}" has {len(words)} words, more than a name'
    last = words[-1]
    if last.endswith(".") and len(last.rstrip(".")) > 1 and last.casefold() not in _SUFFIXES:
        return f'"{name}" ends with a period, as a sentence does'
    if len(words) > 2 and all(_HANGUL_WORD.search(w) for w in words):
        return f'"{name}" reads like a Korean phrase, not a name'
    if alone and any(
        w[0].islower() and w.casefold() not in _PARTICLES for w in words if w[0].isalpha()
    ):
        return f'"{name}" has words in lower case, as a sentence does'
    return None


def _names(text: str) -> list[str]:
    return [part.strip().rstrip(MARKERS).strip() for part in text[1:-1].split(",")]


def parse_authors(text: str) -> tuple[str, ...] | None:
    """The names of an authors line `(Name, Name, …)`, or None when the line is not one."""
    if len(text) < 3 or text[0] != "(" or text[-1] != ")":
        return None
    if _PLAIN_LINE.fullmatch(text) and (text.isascii() or not _HANGUL_WORD.search(text)):
        plain = tuple(name.strip() for name in text[1:-1].split(","))
        last = plain[-1].rpartition(" ")[2]
        if (not last.endswith(".") or len(last) == 2) and max(
            map(str.count, plain, repeat(" "))
        ) < MAX_WORDS:
            return plain
    names = _names(text)
    alone = len(names) == 1
    if any(_name_problem(name, alone) for name in names):
        return None
    return tuple(names)


def authors_problem(text: str) -> str:
    """Why a parenthesised line is not an authors line (for a warning that says so)."""
    if len(text) < 3 or text[0] != "(" or text[-1] != ")":
        return "an authors line is in parentheses"
    names = _names(text)
    alone = len(names) == 1
    found = next((p for name in names if (p := _name_problem(name, alone))), None)
    return found or "it is an authors line"
