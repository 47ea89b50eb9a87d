"""`feeds subscribers bounces`: read the bounce mailbox, suppress hard bounces and complainers,
count soft bounces.

A message is recognised as a delivery status notification (RFC 3464, and the non-standard
forms flufl.bounce knows: Exim, Postfix, Microsoft, Yahoo …) or an abuse report (ARF,
RFC 5965). Whom it is about comes first from the VERP address it came back to
(`bounce_address`, feeds.tokens.bounce_tag), then from the addresses it names. Each message
counts once (its Message-ID is remembered), and nothing is deleted: what is not recognised
is left alone, and reported.
"""

from __future__ import annotations

import email
import hashlib
import imaplib
import mailbox
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flufl.bounce import all_failures

from .config import Settings
from .errors import SendError
from .mail import parse_address
from .subscribers import Subscriber, Subscribers
from .tokens import Tokens

_RECIPIENT_HEADERS = ("to", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to")


@dataclass
class Findings:
    """What one run did."""

    lines: list[str] = field(default_factory=list)
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    seen_before: int = 0
    unrecognised: int = 0


def read_mailbox(path: Path) -> Iterator[bytes]:
    """The messages of a Maildir (a folder with cur/ and new/) or an mbox file."""
    if path.is_dir():
        if not (path / "cur").is_dir() or not (path / "new").is_dir():
            raise SendError("expected a Maildir (with cur/ and new/) or an mbox file", str(path))
        box: mailbox.Mailbox[mailbox.Message] = mailbox.Maildir(path, factory=None, create=False)
    else:
        box = mailbox.mbox(path, factory=None, create=False)
    try:
        for key in box.iterkeys():
            yield box.get_bytes(key)
    except (OSError, mailbox.Error) as exc:
        raise SendError(f"cannot read the mailbox: {exc}", str(path)) from None
    finally:
        box.close()


def read_imap(url: str, password: str | None) -> Iterator[bytes]:
    """The messages of an IMAP folder, `imaps://user@host[:port]/FOLDER` (or `imap://` for a
    server on this machine), read only."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise SendError(f"expected imaps://user@host[:port]/FOLDER, found {url}")
    if password is None:
        raise SendError("the IMAP password is read from FEEDS_IMAP_PASSWORD, which is not set")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    try:
        kind = imaplib.IMAP4_SSL if parts.scheme == "imaps" else imaplib.IMAP4
        client = kind(parts.hostname, parts.port or (993 if parts.scheme == "imaps" else 143))
        with client:
            client.login(unquote(parts.username), password)
            status, _ = client.select(_quoted(folder), readonly=True)
            if status != "OK":
                raise SendError(f"the IMAP server has no folder {folder}")
            _, found = client.uid("SEARCH", "ALL")
            for uid in (found[0] or b"").split():
                _, data = client.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                for item in data:
                    if isinstance(item, tuple):
                        yield item[1]
    except (OSError, imaplib.IMAP4.error) as exc:
        raise SendError(
            f"cannot read the IMAP folder {folder} at {parts.hostname}: {exc}"
        ) from None


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def is_complaint(message: Message) -> bool:
    """An abuse report (ARF, RFC 5965): multipart/report; report-type=feedback-report."""
    return (
        message.get_content_type() == "multipart/report"
        and (message.get_param("report-type") or "").lower() == "feedback-report"  # type: ignore[union-attr]
    )


def _all_parts(message: Message) -> Iterator[Message]:
    for part in message.walk():
        yield part
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, str):
                yield email.message_from_string(payload, policy=compat32)


def _addresses(message: Message, names: Iterable[str]) -> list[str]:
    values = [v for part in _all_parts(message) for n in names for v in part.get_all(n, [])]
    return [addr for _, addr in getaddresses([str(v) for v in values]) if addr]


def _complainers(report: Message) -> list[str]:
    """Whom an abuse report is about: its Original-Rcpt-To, else the To of the message it
    reports (many providers redact both; then only the VERP address tells)."""
    named = _addresses(report, ("original-rcpt-to",))
    if named:
        return named
    inner = [p for p in _all_parts(report) if p is not report and p.get("message-id")]
    return [addr for part in inner for _, addr in getaddresses(part.get_all("to", [])) if addr]


class Classifier:
    """Finds whom a report is about, and what it says of them."""

    def __init__(self, settings: Settings, people: Subscribers):
        secret = settings.mail.secret_key
        self.tokens = Tokens(secret.reveal()) if secret else None
        local, _, domain = (settings.mail.bounce_address or "").rpartition("@")
        self.verp = (
            re.compile(rf"^{re.escape(local)}\+([0-9a-z]+-[0-9a-z]+)@{re.escape(domain)}$", re.I)
            if local
            else None
        )
        self.people = people

    def by_verp(self, message: Message) -> Subscriber | None:
        """The subscriber of the VERP address the report came back to, if it was made here."""
        if self.tokens is None or self.verp is None:
            return None
        names = (*_RECIPIENT_HEADERS, "return-path")
        for address in _addresses(message, names):
            found = self.verp.match(address)
            subscriber_id = self.tokens.read_bounce_tag(found[1]) if found else None
            if subscriber_id and (subscriber := self.people.by_id(subscriber_id)):
                return subscriber
        return None

    def named(self, addresses: Iterable[str | bytes]) -> list[tuple[str, Subscriber | None]]:
        """(address key, subscriber if any) of each address a report names."""
        found = []
        for raw in addresses:
            text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
            address = parse_address(text)
            if not isinstance(address, str):
                found.append((address.key, self.people.by_email(address.key)))
        return found


def process_bounces(
    settings: Settings, db: Path, path: Path | None, imap: str | None
) -> Iterator[str]:
    """Read every message, act on each bounce and complaint, and say what was done."""
    if (path is None) == (imap is None):
        raise SendError("expected a MAILDIR or MBOX, or --imap URL (one of them)")
    secret = settings.mail.imap_password
    password = secret.reveal() if secret is not None else None
    raw_messages = read_mailbox(path) if path is not None else read_imap(imap or "", password)
    findings = Findings()
    with Subscribers.open(db) as people:
        classify = Classifier(settings, people)
        for raw in raw_messages:
            _one(raw, classify, people, settings.mail.soft_bounce_limit, findings)
    yield from findings.lines
    yield (
        f"{findings.hard} hard bounces, {findings.soft} soft bounces, {findings.complaints} "
        f"complaints; {findings.seen_before} seen before; {findings.unrecognised} not "
        "recognised (left alone)"
    )


def _one(raw: bytes, classify: Classifier, people: Subscribers, limit: int, out: Findings) -> None:
    message = email.message_from_bytes(raw, policy=compat32)
    ident = str(message.get("Message-ID") or "").strip() or hashlib.sha256(raw).hexdigest()
    subject = " ".join(str(message.get("Subject", "")).split())[:80]
    complaint = is_complaint(message)
    if complaint:
        temporary: frozenset[bytes] = frozenset()
        permanent = frozenset(a.encode() for a in _complainers(message))
    else:
        temporary, permanent = all_failures(message)
    if not (complaint or temporary or permanent):  # an auto-reply to the VERP address too
        out.unrecognised += 1
        return
    verp = classify.by_verp(message)
    if not people.first_time_seen(ident):
        out.seen_before += 1
        return
    if verp is not None:
        targets: list[tuple[str, Subscriber | None]] = [(verp.email, verp)]
        hard = bool(permanent) or complaint
    else:
        hard = bool(permanent) or complaint
        targets = classify.named(permanent if hard else temporary)
    detail = f"{ident} ({subject})" if subject else ident
    for key, subscriber in targets:
        if complaint:
            _suppress(people, key, subscriber, "complained", detail)
            out.complaints += 1
            out.lines.append(f"Complaint: {key}: suppressed")
        elif hard:
            _suppress(people, key, subscriber, "bounced", detail)
            out.hard += 1
            out.lines.append(f"Hard bounce: {key}: suppressed")
        else:
            out.soft += 1
            reached = subscriber is not None and people.soft_bounce(subscriber.id, limit, detail)
            if reached:
                _suppress(people, key, subscriber, "bounced", f"{limit} soft bounces; {detail}")
            said = "suppressed" if reached else "counted"
            out.lines.append(f"Soft bounce: {key}: {said}")


def _suppress(
    people: Subscribers, key: str, subscriber: Subscriber | None, reason: str, detail: str
) -> None:
    if subscriber is not None:
        people.leave(subscriber.id, reason, detail)
    people.suppress(key, reason, detail)
