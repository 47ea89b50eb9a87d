"""Subscribers in the store (feeds.store): sign-up with double opt-in, confirmation, leaving,
preferences, bounces and complaints, and forgetting; each change in the consent history.

A subscriber is known by an opaque random id (what tokens and VERP addresses name) and by
their address's key. Statuses:

- pending: signed up (or imported without --confirmed), not confirmed: never mailed;
- confirmed: mailed by `feeds send`;
- listed: only on a list the author keeps (`feeds send --subscribers`), so that their links
  work; the database never mails them on its own;
- unsubscribed, bounced, complained: left, one way or another; a new sign-up needs a new
  confirmation (and bounced and complained addresses are suppressed besides).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .mail import Address
from .store import connect, forgotten_hash, now

SUBSCRIBER_LANGS = ("ko", "en", "both")
LEFT = ("unsubscribed", "bounced", "complained")
STATUSES = ("pending", "confirmed", "listed", *LEFT)
_COLUMNS = "id, email, address, lang, status, soft_bounces, subscribed_at, confirmed_at, left_at"


@dataclass(frozen=True)
class Subscriber:
    """One row of the subscribers table."""

    id: str
    email: str  # the address's key (Address.key)
    address: str  # as normalised, to send to
    lang: str  # ko, en or both
    status: str
    soft_bounces: int
    subscribed_at: str | None
    confirmed_at: str | None
    left_at: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "email": self.address,
            "lang": self.lang,
            "status": self.status,
            "subscribed_at": self.subscribed_at,
            "confirmed_at": self.confirmed_at,
            "left_at": self.left_at,
        }


@dataclass(frozen=True)
class Limits:
    """How many confirmation mails may go to one address a day, and be asked from one IP
    address an hour (mail-bombing a victim through the form)."""

    per_address: int = 3
    per_ip: int = 20


class Subscribers:
    """The subscriber records of one store; safe to share between threads (one at a time)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    @classmethod
    @contextmanager
    def open(cls, path: Path) -> Iterator[Subscribers]:
        db = connect(path)
        try:
            yield cls(db)
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write at a time, whole or not at all (BEGIN IMMEDIATE takes the write lock
        first, so two sign-ups of one address cannot both insert)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _log(self, subscriber: str, event: str, detail: str | None = None) -> None:
        self.db.execute(
            "INSERT INTO consent VALUES (?, ?, ?, ?)", (subscriber, now(), event, detail)
        )

    # -- reading ---------------------------------------------------------------------------

    def _one(self, where: str, value: str) -> Subscriber | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM subscribers WHERE {where}=?", (value,))
        found = row.fetchone()
        return None if found is None else Subscriber(*found)

    def by_id(self, subscriber_id: str) -> Subscriber | None:
        return self._one("id", subscriber_id)

    def by_email(self, key: str) -> Subscriber | None:
        return self._one("email", key)

    def all(self, status: str | None = None) -> list[Subscriber]:
        query = f"SELECT {_COLUMNS} FROM subscribers"
        rows = (
            self.db.execute(query + " WHERE status=? ORDER BY email", (status,))
            if status
            else (self.db.execute(query + " ORDER BY email"))
        )
        return [Subscriber(*row) for row in rows]

    def history(self, subscriber_id: str) -> list[tuple[str, str, str | None]]:
        """(when, event, detail) of everything that happened to the subscription."""
        rows = self.db.execute(
            "SELECT at, event, detail FROM consent WHERE subscriber=? ORDER BY rowid",
            (subscriber_id,),
        )
        return [(str(at), str(event), detail) for at, event, detail in rows]

    def is_suppressed(self, key: str) -> bool:
        found = self.db.execute(
            "SELECT 1 FROM suppressions WHERE email=? UNION ALL SELECT 1 FROM forgotten "
            "WHERE hash=?",
            (key, forgotten_hash(key)),
        )
        return found.fetchone() is not None

    # -- signing up ------------------------------------------------------------------------

    def ip_over_limit(self, ip: str, limits: Limits) -> bool:
        """Whether this IP address asked for more confirmation mails than an hour allows."""
        (count,) = self.db.execute(
            "SELECT count(*) FROM confirmation_mails WHERE ip=? AND at>?", (ip, time.time() - 3600)
        ).fetchone()
        return bool(count >= limits.per_ip)

    def sign_up(
        self, address: Address, lang: str, ip: str, limits: Limits
    ) -> tuple[Subscriber, str] | None:
        """Record a sign-up; the subscriber and the nonce to confirm with when a confirmation
        mail should go out, None when none may (confirmed already, suppressed, or mailed as
        often as a day allows: the form answers the same, whoever the address is)."""
        key = address.key
        with self._transaction():
            if self.is_suppressed(key):
                return None
            found = self.by_email(key)
            if found is not None and found.status == "confirmed":
                return None
            (mailed,) = self.db.execute(
                "SELECT count(*) FROM confirmation_mails WHERE email=? AND at>?",
                (key, time.time() - 86400),
            ).fetchone()
            self.db.execute(
                "INSERT INTO confirmation_mails VALUES (?, ?, ?)", (key, ip, time.time())
            )
            if mailed >= limits.per_address:
                return None
            nonce = secrets.token_hex(8)
            if found is None:
                subscriber_id = secrets.token_hex(8)
                self.db.execute(
                    "INSERT INTO subscribers (id, email, address, lang, status, nonce, "
                    "subscribed_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (subscriber_id, key, address.normalized, lang, nonce, now()),
                )
            else:
                subscriber_id = found.id
                self.db.execute(
                    "UPDATE subscribers SET lang=?, status='pending', nonce=?, address=?, "
                    "subscribed_at=?, confirmed_at=NULL, left_at=NULL WHERE id=?",
                    (lang, nonce, address.normalized, now(), subscriber_id),
                )
            self._log(subscriber_id, "signed up", f"lang {lang}, from {ip}")
            self.db.execute("DELETE FROM confirmation_mails WHERE at<?", (time.time() - 86400,))
        subscriber = self.by_id(subscriber_id)
        assert subscriber is not None
        return subscriber, nonce

    def confirm(self, subscriber_id: str, nonce: str, ip: str) -> str:
        """Confirm the sign-up the nonce belongs to: "confirmed", "already" (confirmed before:
        nothing changes), or "stale" (another sign-up, or a departure, came since)."""
        with self._transaction():
            found = self.db.execute(
                "SELECT status, nonce FROM subscribers WHERE id=?", (subscriber_id,)
            ).fetchone()
            if found is None or found[1] != nonce:
                return "already" if found is not None and found[0] == "confirmed" else "stale"
            if found[0] == "confirmed":
                return "already"
            if found[0] != "pending":
                return "stale"
            self.db.execute(
                "UPDATE subscribers SET status='confirmed', confirmed_at=? WHERE id=?",
                (now(), subscriber_id),
            )
            self._log(subscriber_id, "confirmed", f"from {ip}")
        return "confirmed"

    # -- preferences and leaving -----------------------------------------------------------

    def set_lang(self, subscriber_id: str, lang: str) -> bool:
        with self._transaction():
            changed = self.db.execute(
                "UPDATE subscribers SET lang=? WHERE id=? AND lang!=? AND status NOT IN "
                "('unsubscribed', 'bounced', 'complained')",
                (lang, subscriber_id, lang),
            ).rowcount
            if changed:
                self._log(subscriber_id, "language", lang)
        return bool(changed)

    def leave(self, subscriber_id: str, status: str, how: str) -> bool:
        """Unsubscribe (or mark bounced or complained); True when that changed anything.
        Idempotent: leaving twice changes nothing the second time."""
        assert status in LEFT
        with self._transaction():
            changed = self.db.execute(
                "UPDATE subscribers SET status=?, nonce=NULL, left_at=? WHERE id=? AND "
                "(status NOT IN ('unsubscribed', 'bounced', 'complained') OR "
                "(status='unsubscribed' AND ?!='unsubscribed'))",
                (status, now(), subscriber_id, status),
            ).rowcount
            if changed:
                self._log(subscriber_id, status, how)
        return bool(changed)

    def soft_bounce(self, subscriber_id: str, limit: int, detail: str) -> bool:
        """Count a soft bounce; True when it reached the limit (the caller suppresses)."""
        with self._transaction():
            self.db.execute(
                "UPDATE subscribers SET soft_bounces=soft_bounces+1 WHERE id=?", (subscriber_id,)
            )
            self._log(subscriber_id, "soft bounce", detail)
            row = self.db.execute(
                "SELECT soft_bounces FROM subscribers WHERE id=?", (subscriber_id,)
            ).fetchone()
        return row is not None and row[0] >= limit

    # -- lists -----------------------------------------------------------------------------

    def listed(self, people: Iterable[tuple[Address, str]]) -> dict[str, str]:
        """The ids of people on a list the author keeps (feeds send --subscribers), by address
        key: a record is made for each one missing (status listed), so that their links and
        bounces name them; a known one is left as it is. One transaction for the whole list."""
        with self._transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO subscribers (id, email, address, lang, status, "
                "subscribed_at) VALUES (?, ?, ?, ?, 'listed', ?)",
                [(secrets.token_hex(8), a.key, a.normalized, lang, now()) for a, lang in people],
            )
        return self.ids()

    def ids(self) -> dict[str, str]:
        """Every subscriber's id, by address key."""
        return {str(e): str(i) for e, i in self.db.execute("SELECT email, id FROM subscribers")}

    def left(self) -> set[str]:
        """The address keys of everyone who left (unsubscribed, bounced, complained)."""
        rows = self.db.execute(
            "SELECT email FROM subscribers WHERE status IN ('unsubscribed', 'bounced', "
            "'complained')"
        )
        return {str(e) for (e,) in rows}

    def add(self, people: Iterable[tuple[Address, str, str]], confirmed: bool) -> int:
        """`feeds subscribers import`: new subscribers, confirmed or pending (never mailed until
        they confirm); one whose (exported) status says they left is added as left, never to be
        mailed; a known or suppressed address is left as it is. Returns how many were added,
        all in one transaction."""
        added = 0
        with self._transaction():
            for address, lang, was in people:
                if self.is_suppressed(address.key) or self.by_email(address.key) is not None:
                    continue
                status = was if was in LEFT else "confirmed" if confirmed else "pending"
                subscriber_id, when = secrets.token_hex(8), now()
                self.db.execute(
                    "INSERT INTO subscribers (id, email, address, lang, status, subscribed_at, "
                    "confirmed_at, left_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        subscriber_id,
                        address.key,
                        address.normalized,
                        lang,
                        status,
                        when,
                        when if status == "confirmed" else None,
                        when if status in LEFT else None,
                    ),
                )
                if status in ("bounced", "complained"):
                    self.suppress(address.key, status, "imported")
                self._log(subscriber_id, "imported", f"as {status}")
                added += 1
        return added

    def forget(self, key: str) -> bool:
        """Erase everything the store holds about the address (subscription, consent history,
        messages, suppression), keeping only a hash of it so it is never mailed again."""
        with self._transaction():
            found = self.by_email(key)
            for table, column in (("messages", "email"), ("suppressions", "email")):
                self.db.execute(f"DELETE FROM {table} WHERE {column}=?", (key,))
            self.db.execute("DELETE FROM confirmation_mails WHERE email=?", (key,))
            if found is not None:
                self.db.execute("DELETE FROM consent WHERE subscriber=?", (found.id,))
                self.db.execute("DELETE FROM subscribers WHERE id=?", (found.id,))
            self.db.execute(
                "INSERT OR IGNORE INTO forgotten VALUES (?, ?)", (forgotten_hash(key), now())
            )
        return found is not None

    def suppress(self, key: str, reason: str, detail: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO suppressions (email, reason, detail, created_at) "
            "VALUES (?, ?, ?, ?)",
            (key, reason, detail, now()),
        )

    def first_time_seen(self, message: str) -> bool:
        """Whether a bounce or report with this id is new (each counts once)."""
        return (
            self.db.execute(
                "INSERT OR IGNORE INTO reports_seen VALUES (?, ?)", (message, now())
            ).rowcount
            > 0
        )


def parse_lang(value: str) -> str | None:
    """A subscriber's languages as a form or a list gives them, or None."""
    value = value.strip().lower()
    return value if value in SUBSCRIBER_LANGS else None


def wanted(subscribers: Iterable[Subscriber], lang: str) -> list[Subscriber]:
    """The confirmed subscribers who read `lang`."""
    return [s for s in subscribers if s.status == "confirmed" and s.lang in (lang, "both")]
