"""Feed items rendered once: each note's item, per language, as Atom, RSS and JSON Feed write
it inside a document, kept in the cache for every feed document that lists the note.

A note appears in its language's feed and in the feed of each of its tags, and with RFC 5005
archives every one of those documents is written out; rendering the same item again for each
of them was most of a cold build. The store is one SQLite file in the cache folder
(`items.sqlite`), shared by the build's workers; each row carries a checksum of its bytes, and
a row that fails it, or a file SQLite cannot read, counts as absent: the item is rendered
again. Like everything in the cache it can be deleted at any time.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS items"
    " (key TEXT PRIMARY KEY, checksum INTEGER, atom BLOB, rss BLOB, json BLOB)"
)
"""With a rowid: the keys are then an index of their own, small, which counting and garbage
collection read instead of every row."""
_BATCH = 500
"""Keys per query (SQLite allows 32,766 parameters; a page of a feed rarely has 500)."""

GARBAGE_RATIO = 1.5
"""Rows no build uses any more are deleted once there are this many times as many as used."""


class Fragment(NamedTuple):
    """One feed item as each format writes it inside a document (feed.render_items)."""

    atom: bytes
    rss: bytes
    json: bytes


def _checksum(fragment: Fragment) -> int:
    return zlib.crc32(fragment.json, zlib.crc32(fragment.rss, zlib.crc32(fragment.atom)))


def _looks_like_sqlite(path: Path) -> bool:
    """No file yet, or one that starts as SQLite's do. SQLite itself would read a damaged file
    as the database in its write-ahead log, when a build's workers left one behind."""
    try:
        with open(path, "rb") as file:
            head = file.read(16)
    except FileNotFoundError:
        return True
    except OSError:  # unreadable: as SQLite would find it
        return False
    return not head or head == b"SQLite format 3\x00"


class ItemStore:
    """Fragments by item key, in one SQLite file; safe to use from several processes at once.

    A store that cannot be read behaves as an empty one that keeps nothing (the build still
    renders every item right); `collect_garbage` then starts it afresh for the next build.
    """

    def __init__(self, path: Path):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def _connection(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not _looks_like_sqlite(self.path):
                    raise sqlite3.DatabaseError("not a database")
                db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
                # Rows of ~10 KB: with large pages, reading them takes a third of the time
                # (the page size counts only when the file is made).
                db.execute("PRAGMA page_size=65536")
                # WAL: the workers read while one writes. Not syncing risks the store only in
                # a crash of the OS, and a damaged store is seen (checksums, SQLite's own
                # checks) and replaced.
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=OFF")
                db.execute(_SCHEMA)
                self._db = db
            except sqlite3.Error:
                self._broken = True
        return self._db

    @contextlib.contextmanager
    def _using(self) -> Iterator[sqlite3.Connection | None]:
        db = self._connection()
        try:
            yield db
        except sqlite3.DatabaseError:  # damaged, or not a database: do without it
            self._broken = True
            self.close()

    def get_many(self, keys: Sequence[str]) -> dict[str, Fragment]:
        """The stored fragments of these keys (the missing and damaged ones left out)."""
        found: dict[str, Fragment] = {}
        with self._using() as db:
            if db is None:
                return found
            for start in range(0, len(keys), _BATCH):
                batch = keys[start : start + _BATCH]
                marks = ",".join("?" * len(batch))
                query = f"SELECT key, checksum, atom, rss, json FROM items WHERE key IN ({marks})"
                for key, checksum, *formats in db.execute(query, batch):
                    fragment = Fragment(*formats)
                    if all(type(f) is bytes for f in formats) and checksum == _checksum(fragment):
                        found[key] = fragment
        return found

    def put_many(self, fragments: dict[str, Fragment]) -> None:
        """Keep these fragments (replacing damaged rows of the same keys)."""
        rows = [(key, _checksum(f), *f) for key, f in fragments.items()]
        with self._using() as db:
            if db is None or not rows:
                return
            with contextlib.closing(db.cursor()) as cursor:
                cursor.execute("BEGIN IMMEDIATE")
                cursor.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)", rows)
                cursor.execute("COMMIT")

    def collect_garbage(self, live: Iterable[str]) -> int:
        """Delete the rows of keys not in `live` once they outnumber the live ones by
        GARBAGE_RATIO; a damaged store is deleted whole. Returns the rows deleted."""
        live = set(live)
        with self._using() as db:
            if db is not None:
                (rows,) = db.execute("SELECT count(*) FROM items").fetchone()
                if rows <= GARBAGE_RATIO * max(len(live), 1):
                    return 0
                db.execute("CREATE TEMP TABLE live (key TEXT PRIMARY KEY) WITHOUT ROWID")
                db.executemany("INSERT INTO live VALUES (?)", ((key,) for key in live))
                deleted = db.execute("DELETE FROM items WHERE key NOT IN live").rowcount
                db.execute("DROP TABLE live")
                db.execute("VACUUM")
                return int(deleted)
        if self._broken:
            self.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
            self._broken = False
        return 0

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
