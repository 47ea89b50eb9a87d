"""What the command line shows while it works, apart from click (which only feeds.cli uses)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

from .errors import Problem, grouped


class ProgressLine:
    """A one-line status on a terminal, shown once a build has run for more than a moment."""

    def __init__(self, stream: TextIO = sys.stderr, delay: float = 0.5):
        self.stream = stream
        self.start = time.monotonic()
        self.delay = delay
        self.shown = False

    def __call__(self, stage: str, count: int) -> None:
        if time.monotonic() - self.start >= self.delay:
            self.stream.write(f"\r\033[K{stage}: {count} files")
            self.stream.flush()
            self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def problem_lines(
    problems: Iterable[Problem], as_errors: bool = False, verbose: bool = True
) -> Iterator[str]:
    """One `Error: …` or `Warning: …` line per problem; unless verbose, warnings of a kind
    beyond the first few as one count line."""
    problems = list(problems)
    for problem in problems:
        if as_errors or problem.severity == "error":
            yield f"Error: {problem}"
    warnings = [p for p in problems if not (as_errors or p.severity == "error")]
    for _, line in grouped(warnings, verbose):
        yield f"Warning: {line}"
