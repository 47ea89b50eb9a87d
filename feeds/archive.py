"""A folder of digests: listed, read and checked as a whole (every problem in every file)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from .errors import ParseError, Problem
from .model import Archive, Digest, Note, tag_key
from .parse import Parsed, parse_file
from .pool import Pool


class Loaded(NamedTuple):
    """What a folder of digests gave: the archive (all digests that parsed) and every problem."""

    archive: Archive
    warnings: tuple[Problem, ...]
    errors: tuple[Problem, ...]


def digest_files(folder: Path) -> list[Path]:
    """The digest files of a folder: `*.txt`, hidden files aside, in name order."""
    if not folder.is_dir():
        raise ParseError(f"expected a folder of digests, found no folder at {folder}")
    found = [p for p in folder.glob("*.txt") if not p.name.startswith(".") and p.is_file()]
    return sorted(found, key=lambda p: p.name)  # as sorting the paths, without pathlib's compare


def read_archive(
    folder: Path,
    parse: Callable[[Path], Parsed] = parse_file,
    files: list[Path] | None = None,
) -> Loaded:
    """Read every digest in a folder, collecting every warning and error rather than stopping.

    `parse` reads one file (a build passes one that remembers files it has parsed before);
    `files`: the folder's digest files, when the caller has listed them already.
    """
    files = digest_files(folder) if files is None else files
    errors: list[Problem] = []
    warnings: list[Problem] = []
    digests: list[Digest] = []
    if not files:
        errors.append(Problem(f"expected digest files (*.txt) in {folder}, found none"))
    for path in files:
        parsed, problems = _parse_reporting(path, parse)
        errors.extend(problems)
        if parsed is not None:
            digests.append(parsed.digest)
            warnings.extend(parsed.warnings)
    errors.extend(_duplicate_ids((d.id, d.source) for d in digests))
    digests.sort(key=lambda d: d.sort_key, reverse=True)
    return Loaded(Archive(_display_tags(digests)), tuple(warnings), tuple(errors))


def _parse_reporting(
    path: Path, parse: Callable[[Path], Parsed]
) -> tuple[Parsed | None, tuple[Problem, ...]]:
    """One file parsed, or the errors that stopped it."""
    try:
        return parse(path), ()
    except OSError as exc:
        return None, (Problem(f"cannot read the file: {exc.strerror}", str(path)),)
    except ParseError as exc:
        return None, exc.problems


def load_archive(folder: Path) -> Loaded:
    """Read every digest in a folder. Raises ParseError carrying every error in every file."""
    loaded = read_archive(folder)
    if loaded.errors:
        raise ParseError.from_problems(loaded.errors)
    return loaded


def _duplicate_ids(ids_and_sources: Iterable[tuple[str, str]]) -> list[Problem]:
    seen: dict[str, str] = {}
    problems = []
    for id_, source in ids_and_sources:
        if id_ in seen:
            problems.append(
                Problem(
                    f"the digest id {id_} is also the id of {seen[id_]}: "
                    "expected one file per date (and part)",
                    source,
                    1,
                )
            )
        else:
            seen[id_] = source
    return problems


class Summary(NamedTuple):
    """What `feeds check` reports of a folder: counts and every problem, but not the notes."""

    digests: int
    notes: int
    tags: int
    warnings: tuple[Problem, ...]
    errors: tuple[Problem, ...]


class _FileSummary(NamedTuple):
    id: str | None
    source: str
    notes: int
    tag_keys: frozenset[str]
    warnings: tuple[Problem, ...]
    errors: tuple[Problem, ...]


def _summarize(paths: list[Path]) -> list[_FileSummary]:
    found = []
    for path in paths:
        parsed, errors = _parse_reporting(path, parse_file)
        if parsed is None:
            found.append(_FileSummary(None, str(path), 0, frozenset(), (), errors))
            continue
        notes = parsed.digest.notes
        keys = frozenset(tag_key(tag) for note in notes for tag in note.tags)
        found.append(
            _FileSummary(parsed.digest.id, str(path), len(notes), keys, parsed.warnings, ())
        )
    return found


PARALLEL_CHECK_FILES = 400
"""From this many files on, `summarize_archive` parses on every core (a fork costs ~10 ms)."""


def summarize_archive(folder: Path, workers: int) -> Summary:
    """Every problem in a folder of digests and what it holds, as read_archive finds them.

    Nothing needs the notes afterwards, so with many files each core parses a share and
    sends back only counts and problems.
    """
    files = digest_files(folder)
    if not files:
        return Summary(
            0, 0, 0, (), (Problem(f"expected digest files (*.txt) in {folder}, found none"),)
        )
    count = workers if len(files) >= PARALLEL_CHECK_FILES else 1
    size = -(-len(files) // count)
    shares = [files[i : i + size] for i in range(0, len(files), size)]
    with Pool(min(count, len(shares))) as pool:
        results = [item for share in pool.map(_summarize, shares) for item in share]
    ok = [(r, r.id) for r in results if r.id is not None]
    errors = [e for r in results for e in r.errors]
    errors += _duplicate_ids((id_, r.source) for r, id_ in ok)
    return Summary(
        digests=len(ok),
        notes=sum(r.notes for r, _ in ok),
        tags=len(frozenset().union(*(r.tag_keys for r, _ in ok))),
        warnings=tuple(w for r in results for w in r.warnings),
        errors=tuple(errors),
    )


def _display_tags(newest_first: list[Digest]) -> tuple[Digest, ...]:
    """Every tag spelt as it was first written, oldest digest first."""
    spelling: dict[str, str] = {}  # tag key -> first spelling
    display: dict[str, str] = {}  # each spelling -> the first spelling of its key
    for digest in reversed(newest_first):
        for note in digest.notes:
            for tag in note.tags:
                if tag not in display:
                    display[tag] = spelling.setdefault(tag_key(tag), tag)
    if all(tag == shown for tag, shown in display.items()):
        return tuple(newest_first)

    def respell(note: Note) -> Note:
        tags = tuple(map(display.__getitem__, note.tags))
        return note if tags == note.tags else replace(note, tags=tags)

    return tuple(
        replace(digest, notes=tuple(map(respell, digest.notes))) for digest in newest_first
    )
