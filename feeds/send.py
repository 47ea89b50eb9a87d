"""`feeds send`: mail a built newsletter to every subscriber over SMTP, once each.

A SQLite ledger records each message per (digest, language, recipient) before
the SMTP transaction ("sending") and after the server accepted it ("sent"). A
message found "sending" at the start of a run was in flight when a run died: the
server may or may not have it. It is sent again with the same Message-ID and
marked in doubt, so the only possible duplicate is that one message.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import hmac
import smtplib
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from .config import Settings
from .errors import Problem, SendError
from .model import LANGS, Lang
from .newsletter import TOKEN_PLACEHOLDER, header_text
from .urls import newsletter_path

MAX_ATTEMPTS = 4
BACKOFF_SECONDS = 0.5


@dataclass(frozen=True)
class Subscriber:
    email: str
    lang: str
    name: str
    line: int


@dataclass(frozen=True)
class Recipient:
    email: str
    lang: Lang
    name: str


@dataclass
class SendSummary:
    sent: int = 0
    already_sent: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    in_doubt: int = 0


def valid_address(address: str) -> bool:
    """An addr-spec with one @, a local part and a dotted domain, as the email package parses it."""
    if any(c.isspace() for c in address) or address.count("@") != 1:
        return False
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, HeaderParseError, IndexError):
        return False
    return parsed.addr_spec == address and "." in parsed.domain and bool(parsed.username)


def read_subscribers(path: Path) -> tuple[list[Subscriber], list[Problem]]:
    """Subscribers from a CSV file `email,lang[,name]`, and a problem for every bad row."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SendError(f"cannot read the subscribers: {exc}", source) from None
    rows = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(rows, [])]
    if "email" not in header or "lang" not in header:
        raise SendError(
            f'expected a header line "email,lang[,name]", found "{",".join(header)}"', source, 1
        )
    problems: list[Problem] = []
    subscribers: list[Subscriber] = []
    first_line: dict[str, int] = {}
    for number, row in enumerate(rows, 2):
        if not any(cell.strip() for cell in row):
            continue
        cells = dict(zip(header, (c.strip() for c in row), strict=False))
        address, lang, name = (
            cells.get("email", ""),
            cells.get("lang", "").lower(),
            cells.get("name", ""),
        )
        if not valid_address(address):
            problems.append(
                Problem(f'expected an email address, found "{address}"', source, number)
            )
            continue
        if lang not in ("ko", "en", "both"):
            problems.append(
                Problem(f'expected the language ko, en or both, found "{lang}"', source, number)
            )
            continue
        key = address.casefold()
        if key in first_line:
            problems.append(
                Problem(f"{address} is already listed at line {first_line[key]}", source, number)
            )
            continue
        first_line[key] = number
        subscribers.append(Subscriber(address, lang, header_text(name), number))
    return subscribers, problems


def read_unsubscribed(path: Path | None) -> set[str]:
    """Addresses (one a line, # comments allowed) that must never be mailed."""
    if path is None or not path.exists():
        return set()
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return {line.strip().casefold() for line in lines if line.strip() and not line.startswith("#")}


def recipients(
    subscribers: Iterable[Subscriber], langs: Iterable[Lang], unsubscribed: set[str]
) -> tuple[list[Recipient], int]:
    """One recipient per subscriber and wanted language, and how many were skipped as unsubscribed."""
    wanted = tuple(langs)
    chosen, skipped = [], 0
    for sub in subscribers:
        if sub.email.casefold() in unsubscribed:
            skipped += 1
            continue
        for lang in wanted:
            if sub.lang in (lang, "both"):
                chosen.append(Recipient(sub.email, lang, sub.name))
    return chosen, skipped


def unsubscribe_token(secret: str, address: str) -> str:
    """`<address, base64url>.<HMAC>`: names the address and cannot be forged for another one."""
    encoded = base64.urlsafe_b64encode(address.casefold().encode()).decode().rstrip("=")
    mac = hmac.new(secret.encode(), address.casefold().encode(), hashlib.sha256).digest()
    return f"{encoded}.{base64.urlsafe_b64encode(mac[:18]).decode()}"


def message_id(digest_id: str, lang: Lang, address: str, domain: str) -> str:
    """Deterministic per (digest, language, recipient): a resent message carries the same id."""
    digest = hashlib.sha256(f"{digest_id}\0{lang}\0{address.casefold()}".encode()).hexdigest()[:24]
    return f"<{digest_id}.{lang}.{digest}@{domain}>"


def load_newsletter(dist: Path, digest_id: str, lang: Lang) -> EmailMessage:
    path = dist / newsletter_path(digest_id, lang, "eml")
    if not path.is_file():
        raise SendError(
            f"the digest {digest_id} has no built {lang} newsletter ({path} is missing): "
            "run feeds build first, or check the digest id"
        )
    return message_from_bytes(path.read_bytes(), _class=EmailMessage, policy=SMTP)  # type: ignore[arg-type]


def personalise(
    template: EmailMessage, recipient: Recipient, digest_id: str, settings: Settings
) -> EmailMessage:
    """The recipient's own copy: their To, Message-ID and unsubscribe token, in headers and body."""
    token = (
        unsubscribe_token(settings.mail.unsubscribe_secret.reveal(), recipient.email)
        if settings.mail.unsubscribe_secret
        else "none"
    )
    msg = EmailMessage(policy=SMTP)
    for name, value in template.items():
        if name.lower() in (
            "to",
            "message-id",
            "content-type",
            "content-transfer-encoding",
            "mime-version",
        ):
            continue
        msg[name] = header_text(str(value).replace(TOKEN_PLACEHOLDER, token))
    msg["To"] = (
        Address(recipient.name, addr_spec=recipient.email) if recipient.name else recipient.email
    )
    msg["Message-ID"] = message_id(digest_id, recipient.lang, recipient.email, settings.site.domain)
    text_part, html_part = template.get_payload()  # type: ignore[misc]
    text = text_part.get_content().replace(TOKEN_PLACEHOLDER, token)
    html = html_part.get_content().replace(TOKEN_PLACEHOLDER, token)
    msg.set_content(text, charset="utf-8", cte="base64")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    msg["Content-Language"] = recipient.lang
    msg.set_boundary(f"=_feeds_{hashlib.sha256(msg['Message-ID'].encode()).hexdigest()[:32]}")
    return msg


class Ledger:
    """The SQLite record of every message: pending, sending, sent or failed."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            """CREATE TABLE IF NOT EXISTS messages (
                digest TEXT NOT NULL, lang TEXT NOT NULL, email TEXT NOT NULL,
                message_id TEXT NOT NULL, status TEXT NOT NULL,
                in_doubt INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
                last_error TEXT, PRIMARY KEY (digest, lang, email))"""
        )

    def status(self, digest: str, lang: str, email: str) -> str | None:
        row = self.db.execute(
            "SELECT status FROM messages WHERE digest=? AND lang=? AND email=?",
            (digest, lang, email.casefold()),
        ).fetchone()
        return row[0] if row else None

    def mark_in_doubt(self, digest: str) -> int:
        """Messages left "sending" by a run that died: the server may have them. Returns how many."""
        cursor = self.db.execute(
            "UPDATE messages SET status='in_doubt', in_doubt=1 WHERE digest=? AND status='sending'",
            (digest,),
        )
        return cursor.rowcount

    def set(
        self, digest: str, lang: str, email: str, msgid: str, status: str, error: str | None = None
    ) -> None:
        self.db.execute(
            """INSERT INTO messages (digest, lang, email, message_id, status, attempts, last_error)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (digest, lang, email) DO UPDATE SET status=excluded.status,
                 attempts=attempts + (excluded.status='sending'), last_error=excluded.last_error""",
            (digest, lang, email.casefold(), msgid, status, int(status == "sending"), error),
        )

    def rows(self, digest: str) -> list[tuple[str, str, str, str, int]]:
        return self.db.execute(
            "SELECT lang, email, message_id, status, in_doubt FROM messages WHERE digest=? ORDER BY lang, email",
            (digest,),
        ).fetchall()

    def close(self) -> None:
        self.db.close()


class Connection:
    """One SMTP connection, opened lazily, reused for many messages, reopened after a drop."""

    def __init__(self, settings: Settings):
        if not settings.mail.smtp_host:
            raise SendError(
                "no SMTP server is set: set smtp_host in [tool.feeds] or FEEDS_SMTP_HOST"
            )
        self.settings = settings.mail
        self.password = (
            settings.mail.smtp_password.reveal() if settings.mail.smtp_password else None
        )
        self.smtp: smtplib.SMTP | None = None

    def open(self) -> smtplib.SMTP:
        if self.smtp is None:
            s = self.settings
            port = s.smtp_port or (
                465 if s.smtp_security == "tls" else 587 if s.smtp_security == "starttls" else 25
            )
            smtp: smtplib.SMTP
            if s.smtp_security == "tls":
                smtp = smtplib.SMTP_SSL(s.smtp_host or "", port, timeout=30)
            else:
                smtp = smtplib.SMTP(s.smtp_host or "", port, timeout=30)
                if s.smtp_security == "starttls":
                    smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, self.password or "")
            self.smtp = smtp
        return self.smtp

    def drop(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            finally:
                self.smtp = None

    def close(self) -> None:
        if self.smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.smtp.quit()
            self.smtp = None


def _temporary(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    return isinstance(
        exc, (smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout, OSError)
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace') if isinstance(exc.smtp_error, bytes) else exc.smtp_error}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{code} {msg.decode(errors='replace')}" for code, msg in exc.recipients.values()
        )
    return f"{type(exc).__name__}: {exc}"


def send_digest(
    digest_id: str,
    chosen: list[Recipient],
    templates: dict[Lang, EmailMessage],
    settings: Settings,
    ledger: Ledger,
    rate: float | None = None,
    progress: Callable[[Recipient], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SendSummary:
    """Send every recipient their message unless the ledger says it was sent."""
    summary = SendSummary(in_doubt=ledger.mark_in_doubt(digest_id))
    connection = Connection(settings)
    sender = templates[chosen[0].lang]["From"].addresses[0].addr_spec if chosen else ""
    last = 0.0
    try:
        for recipient in chosen:
            status = ledger.status(digest_id, recipient.lang, recipient.email)
            if status == "sent":
                summary.already_sent += 1
            elif status == "failed":
                summary.failed.append(
                    f"{recipient.email} ({recipient.lang}): failed permanently in an earlier run"
                )
            else:
                msg = personalise(templates[recipient.lang], recipient, digest_id, settings)
                if rate:
                    wait = last + 1 / rate - time.monotonic()
                    if wait > 0:
                        sleep(wait)
                last = time.monotonic()
                _deliver(connection, ledger, digest_id, recipient, msg, sender, summary, sleep)
            if progress is not None:
                progress(recipient)
    finally:
        connection.close()
    return summary


def _deliver(
    connection: Connection,
    ledger: Ledger,
    digest_id: str,
    recipient: Recipient,
    msg: EmailMessage,
    sender: str,
    summary: SendSummary,
    sleep: Callable[[float], None],
) -> None:
    msgid = str(msg["Message-ID"])
    data = msg.as_bytes()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        ledger.set(digest_id, recipient.lang, recipient.email, msgid, "sending")
        try:
            connection.open().sendmail(sender, [recipient.email], data)
        except (smtplib.SMTPException, OSError) as exc:
            if not isinstance(exc, smtplib.SMTPResponseException):
                connection.drop()  # smtplib itself resets the session after a refused command
            if _temporary(exc) and attempt < MAX_ATTEMPTS:
                ledger.set(
                    digest_id, recipient.lang, recipient.email, msgid, "retrying", _describe(exc)
                )
                sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            status = "pending" if _temporary(exc) else "failed"
            ledger.set(digest_id, recipient.lang, recipient.email, msgid, status, _describe(exc))
            summary.failed.append(f"{recipient.email} ({recipient.lang}): {_describe(exc)}")
            return
        ledger.set(digest_id, recipient.lang, recipient.email, msgid, "sent")
        summary.sent += 1
        return


def write_outbox(
    outbox: Path,
    digest_id: str,
    chosen: list[Recipient],
    templates: dict[Lang, EmailMessage],
    settings: Settings,
) -> int:
    """--dry-run: every message that would be sent, as .eml files in OUTBOX/{digest}/{lang}/."""
    for recipient in chosen:
        msg = personalise(templates[recipient.lang], recipient, digest_id, settings)
        safe = "".join(c if c.isalnum() or c in "@._-+" else "_" for c in recipient.email)
        path = outbox / digest_id / recipient.lang / f"{safe}.eml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(msg.as_bytes())
    return len(chosen)


def default_ledger(settings: Settings, subscribers: Path) -> Path:
    return (
        Path(settings.mail.ledger)
        if settings.mail.ledger
        else subscribers.with_name(subscribers.stem + ".ledger.sqlite")
    )


def wanted_langs(lang: str | None) -> tuple[Lang, ...]:
    return LANGS if lang is None else tuple(code for code in LANGS if code == lang)
