"""What a build reads: the digest files (listed once), the note state, and what the outputs
depend on besides them; fingerprinted, and parsed through the parse cache.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from . import __version__
from .archive import Listing, Loaded, list_digests, read_heads
from .cache import FORMAT, Cache, InputStat, ParsedHead, sha256
from .config import SiteSettings
from .errors import FeedsError, ParseError
from .model import Digest, DigestHead, Note, NoteHead
from .parse import decode_digest, parse_digest
from .pool import Pending, Pool
from .state import STATE_FILE, note_hash, retagged, v1_hash
from .templating import default_templates_dir

_LIBRARIES = ("feedgen", "mjml-python", "jinja2", "markupsafe", "lxml")

FRESH_NS = 2_000_000_000
"""A file changed this recently may change again within the same timestamp tick (file systems
stamp in coarse steps), so its stat vouches for nothing: it is read again next time."""

PARALLEL_PARSE_FILES = 64
"""From this many digest files the cache lacks on, the workers parse them (as on a first build)."""


def _library_versions() -> list[str]:
    found = []
    for name in _LIBRARIES:
        try:
            found.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            found.append(f"{name}=?")
    return found


def _tree_hash(folders: Iterable[Path], pattern: str = "*") -> list[str]:
    """Name and content hash of every file under the folders, in a stable order."""
    parts = []
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.rglob(pattern)):
                if path.is_file():
                    parts.append(f"{path.relative_to(folder)}:{sha256(path.read_bytes())}")
    return parts


def code_hash() -> str:
    """A hash of feeds' code and the libraries it renders with: what the parse cache's heads
    depend on besides the digest files."""
    package = Path(__file__).resolve().parent
    parts = [
        f"format={FORMAT}",
        f"feeds={__version__}",
        *_library_versions(),
        *_tree_hash([package], "*.py"),
    ]
    return sha256("\n".join(parts).encode())


def code_salt(site: SiteSettings, code: str | None = None) -> str:
    """A hash of what every output depends on besides the archive and the templates: code and
    libraries (`code`: code_hash, when made already) and the site settings. Part of every
    render key (with the templates a job renders)."""
    return sha256(f"{code or code_hash()}\n{site!r}".encode())


def _input_salt(code: str, templates_dir: str | None) -> str:
    """code_salt and every template file: a build with the same inputs and this salt as the
    last has nothing to do."""
    templates = [default_templates_dir()]
    if templates_dir:
        templates.insert(0, Path(templates_dir))
    return sha256("\n".join([code, *_tree_hash(templates)]).encode())


def _parse_key(path: Path, data: bytes) -> str:
    return sha256(os.fsencode(path) + b"\0" + data)


def _heads(digest: Digest, key: str) -> DigestHead:
    # Authors and tags recur across the archive: interned, each is one string in memory and in
    # each parse cache shard, not one per note (70 MiB of the heads of 10,000 digests).
    notes = tuple(
        NoteHead(n.title, n.slug, n.line, _interned(n.authors), _interned(n.tags), note_hash(n))
        for n in digest.notes
    )
    return DigestHead(digest.id, digest.date, digest.part, digest.source, notes, key)


def _interned(strings: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(map(sys.intern, strings))


def _parse_fresh(path: Path) -> tuple[str, ParsedHead]:
    """Parse one digest file: its parse key, and the digest's heads with the parse's warnings."""
    data = path.read_bytes()  # OSError: reported by read_archive
    parsed = parse_digest(decode_digest(data, str(path)), str(path))
    key = _parse_key(path, data)
    return key, ParsedHead(_heads(parsed.digest, key), parsed.warnings)


def changed_meanwhile(source: str) -> FeedsError:
    """The error of a digest file that is not as the build read it when a job reads it again."""
    return FeedsError("the file changed while the build ran: build again", source)


def parse_again(source: str, key: str) -> Digest:
    """The digest in a file as parsed, when its bytes are those the build read (`key`: their
    parse key); FeedsError if they changed meanwhile."""
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError:
        raise changed_meanwhile(source) from None
    if _parse_key(path, data) != key:
        raise changed_meanwhile(source)
    try:
        return parse_digest(decode_digest(data, source), source).digest
    except ParseError:  # it parsed when the build read it
        raise changed_meanwhile(source) from None


def as_planned(note: Note, head: NoteHead, source: str) -> Note:
    """The note under its head's slug and tags (state.stable_slugs, the display spellings).

    The file's bytes are those its heads were parsed from (parse_again checked them; the parse
    cache is kept per code), so only its place is checked: FeedsError if it is another note.
    """
    if (note.title, note.line) != (head.title, head.line):
        raise changed_meanwhile(source)
    if (note.slug, note.tags) != (head.slug, head.tags):
        note = replace(note, slug=head.slug, tags=head.tags)
    return note


def full_digest(head: DigestHead, parsed: Digest | None = None) -> Digest:
    """The digest of these heads with its notes' text (from `parsed`, parse_again's digest of
    its file, or its file read again), as the build planned it."""
    parsed = parsed or parse_again(head.source, head.key)
    if len(parsed.notes) != len(head.notes):
        raise changed_meanwhile(head.source)
    notes = zip(parsed.notes, head.notes, strict=True)
    return replace(parsed, notes=tuple(as_planned(n, h, head.source) for n, h in notes))


def v1_hashes(head: DigestHead) -> tuple[str, ...]:
    """Its notes' hashes as version 1 of the state file had them (state.v1_hash)."""
    return tuple(v1_hash(note) for note in full_digest(head).notes)


def parse_share(paths: list[Path]) -> list[tuple[Path, tuple[str, ParsedHead] | None]]:
    """In a worker: each file parsed, or None where it fails (the build then parses it again
    itself, to report the problem)."""
    found: list[tuple[Path, tuple[str, ParsedHead] | None]] = []
    for path in paths:
        try:
            found.append((path, _parse_fresh(path)))
        except (OSError, ParseError):
            found.append((path, None))
    return found


@contextmanager
def _collector_off() -> Iterator[None]:
    """The parsed archive lives as long as the build and holds no cycles: it loads with the
    collector off and is then frozen out of its collections, which would otherwise walk its
    millions of objects again and again (the first one right after loading)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


@dataclass
class Inputs:
    """Every input of a build, as read from its stats: see `read`."""

    src: Path
    listing: Listing  # the digest files, as listed once
    files: dict[Path, str]  # each digest file (in name order) and its parse key
    state: bytes | None  # the note state file, as found
    stats: dict[str, InputStat]  # per digest file, the stat that vouches for its key
    code: str  # code and libraries (see code_hash)
    salt: str  # code, libraries, site settings (see code_salt)
    _digest: Any  # hashlib object over the input salt, OUT and every parse key

    @classmethod
    def read(
        cls, src: Path, out: Path, site: SiteSettings, templates_dir: str | None, cache: Cache
    ) -> Inputs:
        """List SRC once and key each digest file by a hash of its name and bytes; a file whose
        stat is as the last build recorded is not read again."""
        code = code_hash()
        salt = code_salt(site, code)
        known = cache.load_input_stats()
        digest = hashlib.sha256(f"{_input_salt(salt, templates_dir)}\n{out.resolve()}\n".encode())
        files: dict[Path, str] = {}
        stats: dict[str, InputStat] = {}
        settled = time.time_ns() - FRESH_NS  # not an output date: only whether to trust a stat
        listing = list_digests(src)
        for path in listing.files:
            name = os.path.abspath(path)
            try:
                st = os.stat(path)
                stat = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                recorded = known.get(name)
                if recorded is not None and recorded.stat == stat:
                    key = recorded.key
                else:
                    key = _parse_key(path, path.read_bytes())  # stat first: a later edit shows
            except OSError:
                files[path] = ""  # reading it again when the archive loads reports why
                digest.update(f"{path}\0unreadable\0".encode())
                continue
            files[path] = key  # not the bytes: a warm build never needs them
            if max(st.st_mtime_ns, st.st_ctime_ns) < settled:
                stats[name] = InputStat(stat, key)
            digest.update(f"{path}\0{key}\0".encode())
        if stats != known:
            cache.save_input_stats(stats)
        state_path = src / STATE_FILE
        state = state_path.read_bytes() if state_path.exists() else None
        return cls(src, listing, files, state, stats, code, salt, digest)

    def fingerprint(self, state: bytes | None) -> str:
        """Every input of a build, with the given note state (which the build itself updates)."""
        found = self._digest.copy()
        found.update(b"state\0" + (state or b""))
        return str(found.hexdigest())

    def load(self, cache: Cache, pool: Pool, keep_going: bool = False) -> ParsedArchive:
        """Parse the digests: the parse cache's copy of a file it holds, else on the workers
        when many are missing (a first build), else here. Raises ParseError with every problem,
        unless keep_going: then the archive is what parsed, and says what was left out."""
        with _collector_off():  # the parse cache and the parses: millions of objects
            return _Archive(self, cache, pool).load(keep_going)


class ParsedArchive:
    """The loaded archive, as heads: the digests, their warnings, and what to keep in the
    parse cache."""

    def __init__(self, loaded: Loaded[DigestHead], used: dict[str, ParsedHead], by_workers: int):
        self.model = loaded.archive
        self.warnings = loaded.warnings
        self.errors = loaded.errors
        self.left_out = loaded.left_out
        self.parsed = used
        self.by_workers = by_workers


class _Archive:
    """One load of the archive through the parse cache."""

    def __init__(self, inputs: Inputs, cache: Cache, pool: Pool):
        self.inputs = inputs
        self.known = cache.load_parsed(inputs.code)
        self.used: dict[str, ParsedHead] = {}
        self.fresh: dict[Path, tuple[str, ParsedHead] | None] = {}
        self.coming: Iterator[Pending[list[Any]]] = iter(())
        self.by_workers = 0
        missing = [path for path, key in inputs.files.items() if key not in self.known]
        if pool.count > 1 and len(missing) >= PARALLEL_PARSE_FILES:
            # In the order they will be asked for, in shares the workers send back as they go.
            size = max(8, len(missing) // (8 * pool.count))
            shares = [missing[i : i + size] for i in range(0, len(missing), size)]
            self.coming = iter([pool.submit(parse_share, share) for share in shares])
            pool.flush()

    def load(self, keep_going: bool) -> ParsedArchive:
        loaded = read_heads(self.inputs.src, self.parse, self.inputs.listing, retagged)
        if loaded.errors and not keep_going:
            failed = set(loaded.left_out)
            hidden = [w for w in loaded.warnings if w.source in failed]
            raise ParseError.from_problems([*loaded.errors, *hidden])
        return ParsedArchive(loaded, self.used, self.by_workers)

    def _parsed_elsewhere(self, path: Path) -> tuple[str, ParsedHead] | None:
        while path not in self.fresh:
            share = next(self.coming, None)
            if share is None:
                return None
            self.fresh.update(share.result())
        return self.fresh.pop(path)

    def parse(self, path: Path) -> ParsedHead:
        key = self.inputs.files.get(path, "")
        hit = self.known.pop(key, None)
        if not isinstance(hit, ParsedHead):
            found = self._parsed_elsewhere(path)
            self.by_workers += found is not None
            key, hit = found if found is not None else _parse_fresh(path)
        self.used[key] = hit
        return hit
