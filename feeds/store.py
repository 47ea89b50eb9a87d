"""The SQLite store: subscribers and their consent history (feeds.subscribers works on
them), the ledger of every message sent, and the addresses never to mail again.

One file (the setting `subscribers_db`) in WAL mode, written with `synchronous=FULL`: the
subscription service and `feeds send` use it at once, and a write it answered for survives
the process being killed.

Each message (digest, language, address) is written down before the relay can have it and
again when the relay took it, so that a run that dies, or a relay that does not answer,
leaves at most that one message in doubt, and a later run sends only what is missing.
Statuses: pending (not sent yet, or deferred), in_flight (its data is going to the relay),
unconfirmed (the data left, no reply came: in doubt), sent, failed (refused for good).
`in_doubt` stays set on a message that may have reached its recipient twice.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import SendError
from .locks import locked

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscribers (
    id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, address TEXT NOT NULL,
    lang TEXT NOT NULL, status TEXT NOT NULL, nonce TEXT,
    soft_bounces INTEGER NOT NULL DEFAULT 0,
    subscribed_at TEXT, confirmed_at TEXT, left_at TEXT);
CREATE TABLE IF NOT EXISTS consent (
    subscriber TEXT NOT NULL, at TEXT NOT NULL, event TEXT NOT NULL, detail TEXT);
CREATE INDEX IF NOT EXISTS consent_of ON consent (subscriber);
CREATE TABLE IF NOT EXISTS confirmation_mails (email TEXT NOT NULL, ip TEXT NOT NULL,
    at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS confirmation_mails_at ON confirmation_mails (at);
CREATE TABLE IF NOT EXISTS forgotten (hash TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reports_seen (message TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    digest TEXT NOT NULL, lang TEXT NOT NULL, email TEXT NOT NULL,
    message_id TEXT NOT NULL, status TEXT NOT NULL,
    in_doubt INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, first_attempt_at TEXT, last_attempt_at TEXT, sent_at TEXT,
    PRIMARY KEY (digest, lang, email));
CREATE TABLE IF NOT EXISTS suppressions (
    email TEXT PRIMARY KEY, reason TEXT NOT NULL, detail TEXT, created_at TEXT NOT NULL);
"""


def now() -> str:
    """When, for the store's timestamps (the one place it reads the clock)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def connect(path: Path) -> sqlite3.Connection:
    """The store at `path` (made if missing), its tables as this version knows them."""
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
    except sqlite3.Error as exc:
        raise SendError(f"cannot use the subscribers database: {exc}", str(path)) from None
    return db


def forgotten_hash(email: str) -> str:
    """What the store keeps of an address it was asked to forget: enough to know it again."""
    return hashlib.sha256(f"feeds.forgotten:{email.casefold()}".encode()).hexdigest()


@dataclass(frozen=True)
class Suppressed:
    email: str
    reason: str
    detail: str
    created_at: str


class Ledger:
    """The store at `path`, for one process at a time: open it with `Ledger.open`."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    @classmethod
    @contextmanager
    def open(cls, path: Path, purpose: str) -> Iterator[Ledger]:
        """The store, held by this process: another `feeds send` on it refuses at once, naming
        this one (`purpose`); the lock goes when the process ends, however it ends."""
        lock = path.with_name(path.name + ".lock")
        with locked(lock, f"the send ledger {path}", purpose, wait=False):
            db = connect(path)
            try:
                yield cls(db)
            finally:
                db.close()

    @classmethod
    @contextmanager
    def peek(cls, path: Path) -> Iterator[Ledger]:
        """The store as it is, read only (an empty one where there is none): for a dry run,
        which must change nothing."""
        try:
            if path.exists():
                db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            else:
                db = sqlite3.connect(":memory:")
                db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise SendError(f"cannot read the send ledger: {exc}", str(path)) from None
        try:
            yield cls(db)
        finally:
            db.close()

    # -- messages --------------------------------------------------------------------------

    def status(self, digest: str, lang: str, email: str) -> str | None:
        row = self.db.execute(
            "SELECT status FROM messages WHERE digest=? AND lang=? AND email=?",
            (digest, lang, email),
        ).fetchone()
        return None if row is None else str(row[0])

    def doubt_left_over(self, digest: str) -> int:
        """Messages a run that died left in flight: the relay may have them. They are in doubt
        now, and will be sent again (with the same Message-ID). Returns how many."""
        return self.db.execute(
            "UPDATE messages SET status='unconfirmed', in_doubt=1 "
            "WHERE digest=? AND status='in_flight'",
            (digest,),
        ).rowcount

    def in_doubt(self, digest: str) -> list[tuple[str, str]]:
        """(address, language) of every message of the digest that may have arrived twice."""
        rows = self.db.execute(
            "SELECT email, lang FROM messages WHERE digest=? AND in_doubt=1 ORDER BY email, lang",
            (digest,),
        )
        return [(str(e), str(lang)) for e, lang in rows]

    def unconfirmed(self, digest: str) -> int:
        return int(
            self.db.execute(
                "SELECT count(*) FROM messages WHERE digest=? AND status='unconfirmed'", (digest,)
            ).fetchone()[0]
        )

    def attempt(self, digest: str, lang: str, email: str, msgid: str, doubtful: bool) -> None:
        """The message's data is about to leave: from here on the relay may have it."""
        when = now()
        self.db.execute(
            """INSERT INTO messages (digest, lang, email, message_id, status, in_doubt, attempts,
                   first_attempt_at, last_attempt_at)
               VALUES (?, ?, ?, ?, 'in_flight', ?, 1, ?, ?)
               ON CONFLICT (digest, lang, email) DO UPDATE SET status='in_flight',
                   in_doubt=max(in_doubt, excluded.in_doubt), attempts=attempts + 1,
                   last_attempt_at=excluded.last_attempt_at,
                   first_attempt_at=coalesce(first_attempt_at, excluded.first_attempt_at)""",
            (digest, lang, email, msgid, int(doubtful), when, when),
        )

    def settle(
        self, digest: str, lang: str, email: str, msgid: str, status: str, error: str | None
    ) -> None:
        """How the message ended: sent, failed, pending (deferred) or unconfirmed (in doubt)."""
        self.db.execute(
            """INSERT INTO messages (digest, lang, email, message_id, status, last_error,
                   sent_at, in_doubt)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (digest, lang, email) DO UPDATE SET status=excluded.status,
                   last_error=excluded.last_error, sent_at=coalesce(excluded.sent_at, sent_at),
                   in_doubt=max(in_doubt, excluded.in_doubt)""",
            (
                digest,
                lang,
                email,
                msgid,
                status,
                error,
                now() if status == "sent" else None,
                int(status == "unconfirmed"),
            ),
        )

    # -- suppressions ----------------------------------------------------------------------

    def suppress(self, email: str, reason: str, detail: str) -> None:
        """Never mail this address again (until `unsuppress`)."""
        self.db.execute(
            "INSERT OR IGNORE INTO suppressions (email, reason, detail, created_at) "
            "VALUES (?, ?, ?, ?)",
            (email, reason, detail, now()),
        )

    def suppressed(self) -> list[Suppressed]:
        rows = self.db.execute(
            "SELECT email, reason, detail, created_at FROM suppressions ORDER BY email"
        )
        return [Suppressed(*map(str, row)) for row in rows]

    def is_suppressed(self, email: str) -> bool:
        """Suppressed, or forgotten (feeds.subscribers.forget)."""
        found = self.db.execute(
            "SELECT 1 FROM suppressions WHERE email=? UNION ALL SELECT 1 FROM forgotten "
            "WHERE hash=?",
            (email, forgotten_hash(email)),
        )
        return found.fetchone() is not None

    def unsuppress(self, email: str) -> bool:
        """Allow mail to the address again; False when it was not suppressed."""
        return self.db.execute("DELETE FROM suppressions WHERE email=?", (email,)).rowcount > 0
