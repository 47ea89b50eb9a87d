"""The build cache, outside dist/: rendered outputs by content hash, found by a hash of their inputs.

Layout of cache_dir:

    objects/ab/abcdef...   one output's bytes, named by their SHA-256 (checked before reuse)
    index                  render key -> the outputs (path, SHA-256, size) and warnings it gave
    parsed/0 … parsed/f    per digest file, by a hash of its name and bytes: the parsed digest
                           (sixteen files, by the hash's first digit)
    inputs                 per digest file (absolute path), its stat and the parse key it vouches for
    builds/<id>            per output folder: the input fingerprint of its last build (first,
                           readable alone) and, per file, SHA-256, size, mtime and inode as written

All but the objects are pickles of plain tuples and dicts (quick to load; the cache is this
user's own folder, like the objects it vouches for). Every file but the objects starts with
the SHA-256 of the rest, so a damaged one is seen and
ignored (the build then renders or reads what it needs afresh); an object whose bytes do not
hash to its name is never used. Nothing here is ever published as is without that check.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import FeedsError

FORMAT = 4
"""Bumped whenever what the cache holds changes shape."""


_FINGERPRINT_MAX = 130
"""A record's first line (its format byte and a SHA-256 in hex) is at most this long."""

_PARSED_SHARDS = tuple("0123456789abcdef")
"""parsed/ holds one file per first hex digit of the key: a new digest rewrites one of them."""


def sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Output:
    """One output file as the cache knows it."""

    path: str
    sha: str
    size: int


@dataclass(frozen=True, slots=True)
class Entry:
    """What one render key produced: its outputs and any warnings (source, message, line)."""

    outputs: tuple[Output, ...]
    warnings: tuple[tuple[str, str | None, int | None], ...] = ()


@dataclass(frozen=True, slots=True)
class Written:
    """A file as a build left it in dist/: content hash, size, and the stat that vouches for it."""

    sha: str
    size: int
    mtime_ns: int
    inode: int


def _sealed(payload: bytes) -> bytes:
    return sha256(payload).encode() + b"\n" + payload


def _unsealed(data: bytes) -> memoryview | None:
    """The payload, if it hashes to the seal; a view, not a copy (parsed/ files are megabytes)."""
    cut = data.find(b"\n")
    payload = memoryview(data)[cut + 1 :]
    return payload if cut >= 0 and data[:cut] == sha256(payload).encode() else None


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write through a temporary file and rename, so a reader sees the old file or the new one.

    On plain strings: a first build writes some twenty thousand objects through it."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


class ObjectStore:
    """Output bytes by SHA-256. Safe to write from several processes at once."""

    def __init__(self, root: Path):
        self.root = root
        self._folders: set[str] = set()  # made by this process: no mkdir per object

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    def put(self, data: bytes) -> str:
        """Store bytes; returns their SHA-256.

        Always a new file (a new inode), even when the name exists: an object shares its inode
        with the dist/ files linked to it, and a file edited in place there may have damaged it.
        """
        sha = sha256(data)
        folder = f"{self.root}/{sha[:2]}"
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        write_atomic(f"{folder}/{sha}", data)
        return sha

    def read_verified(self, sha: str) -> bytes | None:
        """The stored bytes, or None when missing or damaged."""
        try:
            data = self.path(sha).read_bytes()
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
    """The cache folder of one build. Hold `locked()` while using it."""

    def __init__(self, root: Path):
        self.root = root
        self.objects = ObjectStore(root / "objects")
        self._parsed_keys: dict[str, set[str]] = {}  # per shard, as loaded

    @contextmanager
    def locked(self) -> Iterator[Cache]:
        """One build at a time per cache: a second waits rather than racing the first."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / "lock", "a+b")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise FeedsError(
                f"cannot use the cache folder: {exc.strerror}", str(self.root)
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield self
        finally:
            handle.close()

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

    # -- parsed digests --------------------------------------------------------------------

    def load_parsed(self) -> dict[str, Any]:
        """Everything stored per digest file, by key (a hash of the file's name and bytes).

        Millions of objects and no cycles: the build loads them with the collector off."""
        found: dict[str, Any] = {}
        self._parsed_keys = {}
        for shard in _PARSED_SHARDS:
            payload = self._read(f"parsed/{shard}")
            try:
                entries = pickle.loads(payload[1:]) if payload is not None else {}
            except Exception:
                entries = {}
            if isinstance(entries, dict):
                found.update(entries)
                self._parsed_keys[shard] = set(entries)
        return found

    def save_parsed(self, entries: dict[str, Any]) -> None:
        """Keep exactly these entries; only the shards whose keys changed are written again.

        Keys are content hashes, so a shard holding the same keys holds the same values.
        """
        loaded = self._parsed_keys
        by_shard: dict[str, dict[str, Any]] = {shard: {} for shard in _PARSED_SHARDS}
        for key, value in entries.items():
            by_shard[key[0]][key] = value
        for shard, values in by_shard.items():
            if loaded.get(shard) != set(values):
                self._write(f"parsed/{shard}", pickle.dumps(values, pickle.HIGHEST_PROTOCOL))
        folder = self.root / "parsed"
        for item in os.scandir(folder) if folder.is_dir() else ():
            if item.name not in _PARSED_SHARDS:  # a stray file or an older layout
                os.unlink(item.path)

    # -- digest files as last read ---------------------------------------------------------

    def load_input_stats(self) -> dict[str, Any]:
        """Per digest file: ((size, mtime, ctime, inode), parse key) as a build last read it."""
        raw = self._pickled("inputs")
        return {
            name: value
            for name, value in (raw.items() if isinstance(raw, dict) else ())
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], tuple)
        }

    def save_input_stats(self, stats: dict[str, Any]) -> None:
        self._write("inputs", pickle.dumps(stats, pickle.HIGHEST_PROTOCOL))

    # -- render index ----------------------------------------------------------------------

    def load_index(self) -> dict[str, Entry]:
        raw = self._pickled("index")
        try:
            return {
                key: Entry(tuple(Output(p, s, n) for p, s, n in outputs), tuple(warnings))
                for key, (outputs, warnings) in raw.items()
            }
        except (AttributeError, TypeError, ValueError):
            return {}

    def save_index(self, index: dict[str, Entry]) -> None:
        raw = {
            key: (tuple((o.path, o.sha, o.size) for o in entry.outputs), entry.warnings)
            for key, entry in index.items()
        }
        self._write("index", pickle.dumps(raw, pickle.HIGHEST_PROTOCOL))
        (self.root / "index.json").unlink(missing_ok=True)  # cache format 2 kept it as JSON

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

    def load_record(self, out: Path) -> tuple[str, dict[str, Written], list[Any]]:
        """(input fingerprint, files as written, warnings) of the last build into OUT."""
        record = self._record(out)
        if record is None:
            return "", {}, []
        try:
            raw = pickle.loads(record[1])
            files = {path: Written(*values) for path, values in raw["files"].items()}
            return record[0], files, list(raw["warnings"])
        except Exception:  # damaged, or of another version: as if there were none
            return "", {}, []

    def save_record(
        self, out: Path, fingerprint: str, files: dict[str, Written], warnings: Iterable[Any]
    ) -> None:
        raw = {
            "files": {path: (w.sha, w.size, w.mtime_ns, w.inode) for path, w in files.items()},
            "warnings": list(warnings),
        }
        name = self._record_name(out)
        line = fingerprint.encode("ascii") + b"\n"
        self._write(name, line + pickle.dumps(raw, pickle.HIGHEST_PROTOCOL))
        (self.root / f"{name}.json").unlink(missing_ok=True)  # cache format 2 kept it as JSON

    def _pickled(self, name: str) -> Any:
        payload = self._read(name)
        if payload is None:
            return {}
        try:
            return pickle.loads(payload[1:])
        except Exception:  # a sealed file of another version: start afresh
            return {}
