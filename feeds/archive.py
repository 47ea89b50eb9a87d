"""A folder of digests: listed, read and checked as a whole (every problem in every file)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

from .errors import ParseError, Problem
from .model import AnyDigest, Archive, Digest, DigestHead, Note, NoteHead, digest_to_json, tag_key
from .parse import Parsed, parse_file
from .pool import Pool

_Parse = TypeVar("_Parse")


class Loaded(NamedTuple, Generic[AnyDigest]):
    """What a folder of digests gave: the archive (every digest that parsed, the first of two
    with one id), every problem, and the files left out for their errors."""

    archive: Archive[AnyDigest]
    warnings: tuple[Problem, ...]
    errors: tuple[Problem, ...]
    left_out: tuple[str, ...] = ()


class Listing(NamedTuple):
    """The digest files of a folder, in name order, and what was passed over, with why."""

    files: list[Path]
    warnings: list[Problem]


def list_digests(folder: Path) -> Listing:
    """The digest files of a folder: `*.txt` (in any case), hidden files aside, in name order.
    A folder or a link to nothing with such a name is passed over with a warning."""
    if not folder.is_dir():
        raise ParseError(f"expected a folder of digests, found no folder at {folder}")
    files, warnings = [], []
    for path in folder.iterdir():
        if path.name.startswith(".") or path.suffix.lower() != ".txt":
            continue
        if path.is_file():
            files.append(path)
            continue
        what = "a link to nothing" if path.is_symlink() and not path.exists() else "not a file"
        warnings.append(
            Problem(
                f"passed over: {what}, not a digest file", str(path), None, "warning", "skipped"
            )
        )
    files.sort(key=lambda p: p.name)  # as sorting the paths, without pathlib's compare
    return Listing(files, warnings)


def digest_files(folder: Path) -> list[Path]:
    """The digest files of a folder (list_digests, without the warnings)."""
    return list_digests(folder).files


def read_archive(
    folder: Path,
    parse: Callable[[Path], Parsed] = parse_file,
    listing: Listing | None = None,
) -> Loaded[Digest]:
    """Read every digest in a folder, collecting every warning and error rather than stopping.

    `parse` reads one file; `listing`: the folder's digest files, when the caller has listed
    them already.
    """
    digests, display, problems = _read(folder, parse, listing)
    if display:
        digests = [replace(d, notes=_respelled(d.notes, display, _retag)) for d in digests]
    return Loaded(Archive(tuple(digests)), *problems)


def _retag(note: Note, tags: tuple[str, ...]) -> Note:
    return replace(note, tags=tags)


def read_heads(
    folder: Path,
    parse: Callable[[Path], tuple[DigestHead, tuple[Problem, ...]]],
    listing: Listing,
    retag: Callable[[NoteHead, tuple[str, ...]], NoteHead],
) -> Loaded[DigestHead]:
    """read_archive for a build, which plans from heads: `parse` gives a file's digest as
    heads (from the parse cache, mostly); `retag` gives a note's head under other spellings
    of its tags (its hash changes with them)."""
    digests, display, problems = _read(folder, parse, listing)
    if display:
        digests = [replace(d, notes=_respelled(d.notes, display, retag)) for d in digests]
    return Loaded(Archive(tuple(digests)), *problems)


_Note = TypeVar("_Note", Note, NoteHead)


def _respelled(
    notes: tuple[_Note, ...],
    display: dict[str, str],
    retag: Callable[[_Note, tuple[str, ...]], _Note],
) -> tuple[_Note, ...]:
    """The notes with their tags in the archive's spelling (_display_tags)."""
    found = []
    for note in notes:
        tags = tuple(map(display.__getitem__, note.tags))
        found.append(note if tags == note.tags else retag(note, tags))
    return tuple(found)


_Problems = tuple[tuple[Problem, ...], tuple[Problem, ...], tuple[str, ...]]
"""Warnings, errors, and the files left out for their errors."""


def _read(
    folder: Path,
    parse: Callable[[Path], tuple[AnyDigest, tuple[Problem, ...]]],
    listing: Listing | None,
) -> tuple[list[AnyDigest], dict[str, str], _Problems]:
    """Every digest that parsed, newest first, the display spelling of each tag spelling
    where one differs (_display_tags; empty when none does), and the problems."""
    listing = list_digests(folder) if listing is None else listing
    errors: list[Problem] = []
    warnings: list[Problem] = list(listing.warnings)
    digests: list[AnyDigest] = []
    left_out: list[str] = []
    if not listing.files:
        errors.append(Problem(f"expected digest files (*.txt) in {folder}, found none"))
    for path in listing.files:
        parsed, problems = _parse_reporting(path, parse)
        errors.extend(p for p in problems if p.severity == "error")
        warnings.extend(p for p in problems if p.severity == "warning")
        if parsed is not None:
            digests.append(parsed[0])
            warnings.extend(parsed[1])
        else:
            left_out.append(str(path))
    duplicates = _duplicate_ids((d.id, d.source) for d in digests)
    errors.extend(duplicates)
    doubled = {p.source for p in duplicates if p.source is not None}
    left_out += sorted(doubled)
    digests = [d for d in digests if d.source not in doubled]
    warnings += days_problems(digests)
    digests.sort(key=lambda d: d.sort_key, reverse=True)
    display = _display_tags(digests)
    if all(tag == shown for tag, shown in display.items()):
        display = {}
    return digests, display, (tuple(warnings), tuple(errors), tuple(left_out))


def days_problems(
    digests: Iterable[Digest | DigestHead], today: date | None = None
) -> list[Problem]:
    """Warnings about the dates of digests: in the future (by the clock: a check, not an
    output), or a day with an unnumbered digest and numbered parts both."""
    today = today or date.today()
    found: list[Problem] = []
    days: dict[date, list[Digest | DigestHead]] = {}
    for digest in digests:
        days.setdefault(digest.date, []).append(digest)
        if digest.date > today:
            found.append(
                Problem(
                    f"the digest is dated {digest.date}, which is still to come",
                    digest.source,
                    1,
                    "warning",
                    "future-date",
                )
            )
    for day, same in days.items():
        whole = [d for d in same if d.part is None]
        if whole and any(d.part is not None for d in same):
            parts = ", ".join(Path(d.source).name for d in same if d.part is not None)
            found.append(
                Problem(
                    f"{day} has an unnumbered digest and numbered parts ({parts}): number "
                    "every part of a day that has several",
                    whole[0].source,
                    1,
                    "warning",
                    "parts",
                )
            )
    return found


def _parse_reporting(
    path: Path, parse: Callable[[Path], _Parse]
) -> tuple[_Parse | None, tuple[Problem, ...]]:
    """One file parsed, or the problems that stopped it (its warnings among them)."""
    try:
        return parse(path), ()
    except OSError as exc:
        return None, (Problem(f"cannot read the file: {exc.strerror}", str(path)),)
    except ParseError as exc:
        return None, exc.problems


def load_archive(folder: Path) -> Loaded[Digest]:
    """Read every digest in a folder. Raises ParseError carrying every error in every file."""
    loaded = read_archive(folder)
    if loaded.errors:
        raise ParseError.from_problems(loaded.errors)
    return loaded


def _duplicate_ids(ids_and_sources: Iterable[tuple[str, str]]) -> list[Problem]:
    """An error for each file whose id an earlier file (in name order) has."""
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
    digest: Digest | None  # without its notes
    source: str
    notes: int
    tag_keys: frozenset[str]
    problems: tuple[Problem, ...]


def _summarize(paths: list[Path]) -> list[_FileSummary]:
    found = []
    for path in paths:
        parsed, problems = _parse_reporting(path, parse_file)
        if parsed is None:
            found.append(_FileSummary(None, str(path), 0, frozenset(), problems))
            continue
        notes = parsed.digest.notes
        keys = frozenset(tag_key(tag) for note in notes for tag in note.tags)
        bare = replace(parsed.digest, notes=())
        found.append(_FileSummary(bare, str(path), len(notes), keys, parsed.warnings))
    return found


PARALLEL_CHECK_FILES = 400
"""From this many files on, `summarize_archive` parses on every core (a fork costs ~10 ms)."""


def summarize_archive(folder: Path, workers: int) -> Summary:
    """Every problem in a folder of digests and what it holds, as read_archive finds them.

    Nothing needs the notes afterwards, so with many files each core parses a share and
    sends back only counts and problems.
    """
    listing = list_digests(folder)
    files = listing.files
    if not files:
        return Summary(
            0,
            0,
            0,
            tuple(listing.warnings),
            (Problem(f"expected digest files (*.txt) in {folder}, found none"),),
        )
    count = workers if len(files) >= PARALLEL_CHECK_FILES else 1
    size = -(-len(files) // count)
    shares = [files[i : i + size] for i in range(0, len(files), size)]
    with Pool(min(count, len(shares))) as pool:
        results = [item for share in pool.map(_summarize, shares) for item in share]
    problems = [p for r in results for p in r.problems]
    parsed = [r.digest for r in results if r.digest is not None]
    duplicates = _duplicate_ids((d.id, d.source) for d in parsed)
    doubled = {p.source for p in duplicates}
    ok = [r for r in results if r.digest is not None and r.source not in doubled]
    problems += duplicates
    problems += days_problems(r.digest for r in ok if r.digest is not None)
    return Summary(
        digests=len(ok),
        notes=sum(r.notes for r in ok),
        tags=len(frozenset().union(*(r.tag_keys for r in ok))),
        warnings=(*listing.warnings, *(p for p in problems if p.severity == "warning")),
        errors=tuple(p for p in problems if p.severity == "error"),
    )


def _display_tags(newest_first: list[AnyDigest]) -> dict[str, str]:
    """Each tag spelling -> the spelling it is shown in: as its key was first written, oldest
    digest first."""
    spelling: dict[str, str] = {}  # tag key -> first spelling
    display: dict[str, str] = {}  # each spelling -> the first spelling of its key
    for digest in reversed(newest_first):
        for note in digest.notes:
            for tag in note.tags:
                if tag not in display:
                    display[tag] = spelling.setdefault(tag_key(tag), tag)
    return display


def archive_json(folder: Path) -> tuple[dict[str, object], list[Problem], list[Problem]]:
    """`feeds check --json`: the parsed archive as JSON (schema in the README), with its
    warnings and errors."""
    archive, warnings, errors, _ = read_archive(folder)
    document: dict[str, object] = {
        "digests": [digest_to_json(d) for d in archive.digests],
        "warnings": [p.to_json() for p in warnings],
        "errors": [p.to_json() for p in errors],
    }
    return document, list(warnings), list(errors)
