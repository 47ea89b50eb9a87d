"""The build cache, outside dist/: rendered outputs by content hash, found by a hash of their inputs.

Layout of cache_dir:

    objects/ab/abcdef...   one output's bytes, named by their SHA-256 (checked before reuse)
    index                  render key -> the outputs (path, SHA-256, size) and warnings it gave
    parsed/0 … parsed/f    per digest file, by a hash of its name and bytes: the digest as
                           heads, without its text (sixteen files, by the hash's first digit)
    inputs                 per digest file (absolute path), its stat and the parse key it vouches for
    items.sqlite           each note's feed item per language, as every format writes it
                           (feeds.fragments; SQLite, shared by the workers)
    builds/<id>            per output folder: the input fingerprint of its last build (first,
                           readable alone) and, per file, SHA-256, size, mtime and inode as written

All but the objects are pickles of the typed records below (quick to load; the cache is this
user's own folder, like the objects it vouches for). Every file but the objects starts with
the SHA-256 of the rest, so a damaged one is seen and ignored (the build then renders or reads
what it needs afresh); an object whose bytes do not hash to its name is never used.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import pickle
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from .errors import Problem
from .files import FILE_MODE, remove_stale_temporaries, write_atomic
from .fragments import ItemStore
from .locks import locked
from .model import DigestHead

FORMAT = 8
"""Bumped whenever what the cache holds changes shape."""

_FINGERPRINT_MAX = 130
"""A record's first line (its format byte and a SHA-256 in hex) is at most this long."""

_PARSED_SHARDS = tuple("0123456789abcdef")
"""parsed/ holds one file per first hex digit of the key: a new digest rewrites one of them."""


def sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


class Output(NamedTuple):
    """One output file as the cache knows it."""

    path: str
    sha: str
    size: int


class Entry(NamedTuple):
    """What one render key produced: its outputs, and the warnings rendering gave (a warning
    about the job's own digest file has source None: the folder may move)."""

    outputs: tuple[Output, ...]
    warnings: tuple[Problem, ...] = ()


class Written(NamedTuple):
    """A file as a build left it in dist/: content hash, size, and the stat that vouches for it
    (the ctime too: any write, link or chmod changes it, and nobody can set it back)."""

    sha: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def at(cls, path: str, sha: str) -> Written:
        """The file at path, as it is now, with the hash its bytes are known to have."""
        st = os.stat(path)
        return cls(sha, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class ParsedHead(NamedTuple):
    """A digest file as a build plans from it: the digest's heads, without the notes' text
    (a job that renders it parses the file again), and the warnings parsing it gave."""

    digest: DigestHead
    warnings: tuple[Problem, ...]


FileStat = tuple[int, int, int, int]
"""Size, mtime, ctime and inode of a file."""


class InputStat(NamedTuple):
    """A digest file as a build last read it: the stat that vouches for its parse key."""

    stat: FileStat
    key: str


_Ints = tuple[int, ...]
_Columns = tuple[tuple[str, ...], tuple[str, ...], _Ints, _Ints, _Ints, _Ints]


class BuildRecord:
    """What the last build left in an output folder: its input fingerprint, each file as
    written, and the problems it reported (the warnings, and the errors of digests a build
    that kept going left out).

    Stored by column (paths, hashes, sizes, mtimes, ctimes, inodes): tuples of plain values load in
    C, where a record object per file would cost a Python call each on every build.
    """

    def __init__(self, fingerprint: str, columns: _Columns, problems: tuple[Problem, ...]):
        self.fingerprint = fingerprint
        self.columns = columns
        self.problems = problems

    @classmethod
    def of(
        cls, fingerprint: str, files: dict[str, Written], problems: Iterable[Problem]
    ) -> BuildRecord:
        paths = tuple(files)
        values = files.values()
        columns = (
            paths,
            tuple(w.sha for w in values),
            tuple(w.size for w in values),
            tuple(w.mtime_ns for w in values),
            tuple(w.ctime_ns for w in values),
            tuple(w.inode for w in values),
        )
        return cls(fingerprint, columns, tuple(problems))

    @functools.cached_property
    def files(self) -> dict[str, Written]:
        paths, shas, sizes, mtimes, ctimes, inodes = self.columns
        return dict(zip(paths, map(Written, shas, sizes, mtimes, ctimes, inodes), strict=True))

    def stats(self) -> Iterator[tuple[str, int, int, int, int]]:
        """Each file's path, size, mtime, ctime and inode as written."""
        paths, _, sizes, mtimes, ctimes, inodes = self.columns
        return zip(paths, sizes, mtimes, ctimes, inodes, strict=True)


_NO_RECORD = BuildRecord("", ((), (), (), (), (), ()), ())


def _sealed(payload: bytes) -> bytes:
    return sha256(payload).encode() + b"\n" + payload


def _unsealed(data: bytes) -> memoryview | None:
    """The payload, if it hashes to the seal; a view, not a copy (parsed/ files are megabytes)."""
    cut = data.find(b"\n")
    payload = memoryview(data)[cut + 1 :]
    return payload if cut >= 0 and data[:cut] == sha256(payload).encode() else None


class ObjectStore:
    """Output bytes by SHA-256. Safe to write from several processes at once."""

    def __init__(self, root: Path):
        self.root = root
        self._folders: set[str] = set()  # made by this process: no mkdir per object

    def path(self, sha: str) -> str:
        """Where the object of these bytes is (a plain string: placing a build's files asks
        for tens of thousands)."""
        return f"{self.root}/{sha[:2]}/{sha}"

    def put(self, data: bytes) -> str:
        """Store bytes; returns their SHA-256.

        An object shares its inode with the dist/ files linked to it: one that is whole stays
        (replacing it would change their ctime, which vouches for them); one damaged (edited in
        place through dist/, or its permissions changed) is replaced by a new file.
        """
        sha = sha256(data)
        folder = f"{self.root}/{sha[:2]}"
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        path = f"{folder}/{sha}"
        if not self._whole(path, sha, len(data)):
            write_atomic(path, data)
        return sha

    @staticmethod
    def _whole(path: str, sha: str, size: int) -> bool:
        try:
            with open(path, "rb") as file:
                st = os.fstat(file.fileno())
                if st.st_size != size or stat.S_IMODE(st.st_mode) != FILE_MODE:
                    return False
                return sha256(file.read()) == sha
        except OSError:
            return False

    def read_verified(self, sha: str) -> bytes | None:
        """The stored bytes, or None when missing or damaged (other bytes, other permissions)."""
        try:
            with open(self.path(sha), "rb") as file:
                if stat.S_IMODE(os.fstat(file.fileno()).st_mode) != FILE_MODE:
                    return None
                data = file.read()
        except OSError:
            return None
        return data if sha256(data) == sha else None

    def verified(self, sha: str) -> bool:
        return self.read_verified(sha) is not None

    def collect_garbage(self, keep: set[str]) -> int:
        """Remove every object (and stray temporary file) not in `keep`; returns how many."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for folder in os.scandir(self.root):
            if not folder.is_dir():
                continue
            for item in os.scandir(folder.path):
                if item.name not in keep:
                    os.unlink(item.path)
                    removed += 1
        return removed


class Cache:
    """The cache folder of one build: open it with `Cache.open`, which locks it."""

    def __init__(self, root: Path):
        self.root = root
        self.objects = ObjectStore(root / "objects")
        self.items = ItemStore(root / "items.sqlite")
        self._parsed_keys: dict[str, set[str]] = {}  # per shard, as loaded

    @classmethod
    @contextmanager
    def open(cls, root: Path) -> Iterator[Cache]:
        """The cache at root, held for one build at a time: a second build waits."""
        with locked(root / "lock", f"the cache folder {root}"):
            for folder in (root, root / "parsed", root / "builds"):
                remove_stale_temporaries(folder)
            cache = cls(root)
            try:
                yield cache
            finally:
                cache.items.close()

    # -- sealed files ----------------------------------------------------------------------

    def _read(self, name: str) -> memoryview | None:
        try:
            data = (self.root / name).read_bytes()
        except OSError:
            return None
        payload = _unsealed(data)
        return payload if payload is not None and payload[:1] == bytes([FORMAT]) else None

    def _write(self, name: str, payload: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, _sealed(bytes([FORMAT]) + payload))

    def _pickled(self, name: str) -> Any:
        payload = self._read(name)
        if payload is None:
            return None
        try:
            return pickle.loads(payload[1:])
        except Exception:  # a sealed file of another version: start afresh
            return None

    def _pickle(self, name: str, value: object) -> None:
        self._write(name, pickle.dumps(value, pickle.HIGHEST_PROTOCOL))

    # -- parsed digests --------------------------------------------------------------------

    def load_parsed(self, code: str) -> dict[str, ParsedHead]:
        """Every digest file parsed before by this code (`code`: a hash of it), by key (a hash
        of the file's name and bytes).

        Millions of objects and no cycles: the build loads them with the collector off."""
        found: dict[str, ParsedHead] = {}
        self._parsed_keys = {}
        for shard in _PARSED_SHARDS:
            stored = self._pickled(f"parsed/{shard}")
            if isinstance(stored, tuple) and len(stored) == 2 and stored[0] == code:
                found.update(stored[1])
                self._parsed_keys[shard] = set(stored[1])
        return found

    def save_parsed(self, entries: dict[str, ParsedHead], code: str) -> None:
        """Keep exactly these entries, parsed by this code; only the shards whose keys changed
        (or that another code parsed) are written again.

        Keys are content hashes, so a shard holding the same keys holds the same values.
        """
        by_shard: dict[str, dict[str, ParsedHead]] = {shard: {} for shard in _PARSED_SHARDS}
        for key, value in entries.items():
            by_shard[key[0]][key] = value
        for shard, values in by_shard.items():
            if self._parsed_keys.get(shard) != set(values):
                self._pickle(f"parsed/{shard}", (code, values))

    # -- digest files as last read ---------------------------------------------------------

    def load_input_stats(self) -> dict[str, InputStat]:
        """Per digest file (absolute path): its stat and parse key as a build last read it."""
        found = self._pickled("inputs")
        return found if isinstance(found, dict) else {}

    def save_input_stats(self, stats: dict[str, InputStat]) -> None:
        self._pickle("inputs", stats)

    # -- render index ----------------------------------------------------------------------

    def load_index(self) -> dict[str, Entry]:
        found = self._pickled("index")
        if not isinstance(found, dict):
            return {}
        new, output = tuple.__new__, itertools.repeat(Output)
        return {
            key: Entry(tuple(map(new, output, made)), said) for key, (made, said) in found.items()
        }

    def save_index(self, index: dict[str, Entry]) -> None:
        # As plain tuples, which pickle writes in C: a NamedTuple costs a Python call each, and
        # the index holds 150,000 outputs at 10,000 digests.
        plain = {key: (tuple(map(tuple, e.outputs)), e.warnings) for key, e in index.items()}
        self._pickle("index", plain)

    # -- search shards (feeds.search): key -> the files Pagefind wrote ----------------------

    def load_search(self) -> dict[str, tuple[Output, ...]]:
        found = self._pickled("search")
        return found if isinstance(found, dict) else {}

    def save_search(self, shards: dict[str, tuple[Output, ...]]) -> None:
        self._pickle("search", shards)

    # -- what a build left in an output folder ---------------------------------------------

    def _record_name(self, out: Path) -> str:
        return f"builds/{sha256(os.fsencode(out.resolve()))[:32]}"

    def _record(self, out: Path) -> tuple[str, memoryview] | None:
        """The fingerprint line of OUT's record, and the pickle after it."""
        payload = self._read(self._record_name(out))
        if payload is None:
            return None
        cut = bytes(payload[:_FINGERPRINT_MAX]).find(b"\n", 1)
        if cut < 2:
            return None
        return bytes(payload[1:cut]).decode("ascii", "replace"), payload[cut + 1 :]

    def load_fingerprint(self, out: Path) -> str:
        """The input fingerprint of the last build into OUT ("" when unknown), without loading
        what it wrote: a build with work to do starts its workers before that loads, so they
        do not carry a copy of it."""
        record = self._record(out)
        return record[0] if record is not None else ""

    def load_record(self, out: Path) -> BuildRecord:
        """What the last build into OUT left there (nothing, when unknown or damaged)."""
        record = self._record(out)
        if record is None:
            return _NO_RECORD
        try:
            columns, problems = pickle.loads(record[1])
        except Exception:  # damaged, or of another version: as if there were none
            return _NO_RECORD
        return BuildRecord(record[0], columns, problems)

    def save_record(self, out: Path, record: BuildRecord) -> None:
        line = record.fingerprint.encode("ascii") + b"\n"
        payload = pickle.dumps((record.columns, record.problems), pickle.HIGHEST_PROTOCOL)
        self._write(self._record_name(out), line + payload)
