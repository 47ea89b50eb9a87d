"""The one exception type feeds raises for anything a user can fix, and the problems it carries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Self

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input: what, and where (file and line when known)."""

    message: str
    source: str | None = None
    line: int | None = None
    severity: Severity = "error"
    kind: str = ""  # what sort of problem, for summaries that group them ("no-tags")

    @property
    def location(self) -> str:
        if self.source is None:
            return ""
        return f"{self.source}:{self.line}" if self.line is not None else self.source

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "line": self.line,
            "message": self.message,
            "kind": self.kind,
        }


class FeedsError(Exception):
    """Root of every error feeds reports to a user. Carries one or more problems."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        self.problems: tuple[Problem, ...] = (Problem(message, source, line),)
        super().__init__(str(self.problems[0]))

    @classmethod
    def from_problems(cls, problems: Iterable[Problem]) -> Self:
        problems = tuple(problems)
        if not problems:
            raise ValueError("an error needs at least one problem")
        error = cls.__new__(cls)
        error.problems = problems
        Exception.__init__(error, "\n".join(str(p) for p in problems))
        return error

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    def __reduce__(self) -> tuple[Any, ...]:
        # As it was raised, problems and all, when it crosses from a worker process.
        return (_from_problems, (type(self), self.problems))


def _from_problems(cls: type[FeedsError], problems: tuple[Problem, ...]) -> FeedsError:
    return cls.from_problems(problems)


class ParseError(FeedsError):
    """A digest that does not follow the format."""


class ConfigError(FeedsError):
    """A missing or malformed setting."""


class TemplateError(FeedsError):
    """A template that does not render or compile."""


class SendError(FeedsError):
    """A newsletter that cannot be sent as asked."""


KINDS: dict[str, str] = {
    "no-authors": "notes without an authors line",
    "no-tags": "notes without a tags line",
    "no-abstract": "notes without an abstract",
    "no-korean": "notes without Korean commentary",
    "no-english": "notes without English commentary",
    "split": "notes without a tags line before the next note",
    "merge": "notes that may hold the lines of another",
    "duplicate-title": "titles that appear twice in a digest",
    "skipped": "files passed over",
    "future-date": "digests dated in the future",
    "parts": "days with an unnumbered digest and numbered parts",
    "gmail-clip": "newsletters Gmail would clip",
}
"""What each kind of warning is about, said of many."""

SHOWN_PER_KIND = 3


def grouped(problems: Iterable[Problem], verbose: bool = False) -> list[tuple[Problem | None, str]]:
    """Problems for a person to read: of each kind, the first few in full and a count of the
    rest ("… and 1,200 more notes without English commentary"); with verbose, every one.
    Each line comes with its problem (None for a count line), in the order found."""
    by_kind: dict[str, list[Problem]] = {}
    for problem in problems:
        by_kind.setdefault(problem.kind or f"\0{problem.message}", []).append(problem)
    lines: list[tuple[Problem | None, str]] = []
    for kind, found in by_kind.items():
        shown = found if verbose or len(found) <= SHOWN_PER_KIND + 1 else found[:SHOWN_PER_KIND]
        lines += [(p, str(p)) for p in shown]
        if len(shown) < len(found):
            what = KINDS.get(kind, "of this kind")
            rest = len(found) - len(shown)
            lines.append((None, f"… and {rest:,} more {what} (--verbose lists every one)"))
    return lines
