"""Each subscriber's own copy of a built newsletter, as the bytes that go on the wire.

The build writes `newsletters/{id}/{lang}.eml` with a placeholder where each recipient's
unsubscribe token goes; here that message gets its recipient: their To, their token in the
body and in List-Unsubscribe, a Message-ID that is the same every time that (digest, language,
recipient) is sent, and the Date it is sent at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

from email_validator import EmailNotValidError, validate_email

from .errors import SendError
from .mime import address_header, alternative_body, content_type, header, list_header
from .model import Lang
from .urls import TOKEN_PLACEHOLDER, newsletter_path

_KEPT_HEADERS = ("From", "Subject", "List-Id")
"""Headers of the built message that every recipient's copy carries as they are."""


@dataclass(frozen=True, slots=True)
class Address:
    """A mail address as checked and normalised (email-validator): IDN domains in IDNA form
    for the envelope, and whether the local part needs SMTPUTF8."""

    normalized: str  # as people write it (Unicode domain), the key for lists and ledgers
    envelope: str  # what RCPT TO carries: the IDNA form, or UTF-8 when smtputf8
    smtputf8: bool

    @property
    def key(self) -> str:
        return self.normalized.casefold()


def parse_address(text: str) -> Address | str:
    """The address, or why it is not one."""
    try:
        found = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        return str(exc)
    ascii_email = found.ascii_email
    return Address(found.normalized, ascii_email or found.normalized, ascii_email is None)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One message to send: an address, in one language, with the name to greet, and the
    subscriber's id (feeds.subscribers) that their links and bounces name."""

    address: Address
    lang: Lang
    name: str
    subscriber_id: str = ""

    @property
    def email(self) -> str:
        return self.address.normalized


def message_id(digest_id: str, lang: Lang, address: Address, domain: str) -> str:
    """Deterministic per (digest, language, recipient): a resent message carries the same id."""
    digest = hashlib.sha256(f"{digest_id}\0{lang}\0{address.key}".encode()).hexdigest()[:24]
    return f"<{digest_id}.{lang}.{digest}@{domain}>"


@dataclass(frozen=True)
class Newsletter:
    """A built newsletter in one language, ready to be given each recipient."""

    digest_id: str
    lang: Lang
    kept: bytes  # the header lines every copy carries as built
    sender: str  # the From address
    text: str
    html: str

    @classmethod
    def load(cls, dist: Path, digest_id: str, lang: Lang) -> Newsletter:
        path = dist / newsletter_path(digest_id, lang, "eml")
        if not path.is_file():
            raise SendError(
                f"the digest {digest_id} has no built {lang} newsletter ({path} is missing): "
                "run feeds build first, or check the digest id"
            )
        built = BytesParser(policy=compat32).parsebytes(path.read_bytes())
        parts = built.get_payload() if built.is_multipart() else []
        if not isinstance(parts, list) or len(parts) != 2 or not built["From"]:
            raise SendError("expected a newsletter as feeds builds it", str(path))
        text, html = (_decoded(part) for part in parts)
        kept = b"".join(
            f"{name}: {built[name]}\r\n".encode("ascii") for name in _KEPT_HEADERS if built[name]
        )
        sender = built["From"].rsplit("<", 1)[-1].rstrip(">").strip()
        return cls(digest_id, lang, kept, sender, text, html)

    def message(
        self,
        recipient: Recipient,
        msgid: str,
        sent_at: datetime,
        unsubscribe: Unsubscribe,
    ) -> bytes:
        """The recipient's own copy, dated when it is sent."""
        token = unsubscribe.token(recipient)
        text = self.text.replace(TOKEN_PLACEHOLDER, token).encode()
        html = self.html.replace(TOKEN_PLACEHOLDER, token).encode()
        boundary = f"=_feeds_{hashlib.sha256(msgid.encode()).hexdigest()[:32]}"
        targets = unsubscribe.targets(token)
        lines = [
            self.kept,
            address_header("To", recipient.name, recipient.address.envelope),
            header("Date", format_datetime(sent_at)),
            header("Message-ID", msgid),
            list_header("List-Unsubscribe", targets) if targets else b"",
            header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
            if any(t.startswith("https://") for t in targets)
            else b"",
            header("Content-Language", self.lang),
            b"MIME-Version: 1.0\r\n",
            content_type(boundary),
        ]
        return b"".join(lines) + alternative_body(boundary, text, html)


def _decoded(part: object) -> str:
    payload = part.get_payload(decode=True) if isinstance(part, Message) else None
    if not isinstance(payload, bytes):
        raise SendError("expected a newsletter as feeds builds it")
    return payload.decode("utf-8")


@dataclass(frozen=True)
class Unsubscribe:
    """How a recipient leaves: the https URL (with their token) and the mailto address."""

    https: str | None  # with the TOKEN_PLACEHOLDER where the token goes
    mailto: str | None
    token: Callable[[Recipient], str]

    def targets(self, token: str) -> list[str]:
        found = []
        if self.mailto:
            found.append(f"mailto:{self.mailto}?subject=unsubscribe")
        if self.https:
            found.append(self.https.replace(TOKEN_PLACEHOLDER, token))
        return found


def bounce_sender(bounce_address: str | None, sender: str, tag: str) -> str:
    """The envelope sender of one recipient's message: with `bounce_address` set, its VERP
    form `local+tag@domain`, so that a bounce names whom it is about; else the From address."""
    if not bounce_address:
        return sender
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{tag}@{domain}"


def outbox_name(address: Address) -> str:
    """A file name for a recipient's message that no other address shares (--dry-run)."""
    return quote(address.key, safe="@.+-") + ".eml"
