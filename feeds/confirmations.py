"""The mail that confirms a sign-up (double opt-in): its text in the languages chosen, and its
sending over the SMTP settings, one connection per mail."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from email.utils import format_datetime

import jinja2

from .config import Settings
from .mail import Address
from .mime import address_header, base64_lines, header
from .model import LANGS, Lang, clean_text
from .service_text import SERVICE_TEXT
from .smtp import Outcome, Relay, RelayError, Transaction
from .templating import render

TEMPLATE = "service/confirm_mail.txt"

log = logging.getLogger("feeds.subscriptions")


class ConfirmationMailer:
    """Sends confirmation mails for one service."""

    def __init__(self, settings: Settings, env: jinja2.Environment):
        self.settings = settings
        self.env = env

    def message(self, address: Address, chosen: str, url: str, sent_at: datetime) -> bytes:
        """The mail, in each language chosen (Korean first), as it goes on the wire."""
        site, days = self.settings.site, self.settings.service.confirm_days
        langs: tuple[Lang, ...] = LANGS if chosen == "both" else (chosen,)  # type: ignore[assignment]
        parts = []
        for lang in langs:
            text = SERVICE_TEXT[lang]
            title = clean_text(site.title[lang])
            body = text["mail_body"].format(
                address=address.normalized,
                title=title,
                langs=text[f"lang_{chosen}"],
                days=days,
                url=url,
            )
            parts.append({"lang": lang, "body": body})
        first = langs[0]
        subject = SERVICE_TEXT[first]["mail_subject"].format(title=clean_text(site.title[first]))
        body_text = render(self.env, TEMPLATE, parts=parts).encode()
        seed = hashlib.sha256(url.encode()).hexdigest()[:24]
        return b"".join(
            [
                address_header("From", site.author_name, site.author_email),
                address_header("To", "", address.envelope),
                header("Subject", subject),
                header("Date", format_datetime(sent_at)),
                header("Message-ID", f"<confirm.{seed}@{site.domain}>"),
                header("Auto-Submitted", "auto-generated"),  # RFC 3834: no auto-replies
                header("Content-Language", ", ".join(langs)),
                b"MIME-Version: 1.0\r\n",
                b'Content-Type: text/plain; charset="utf-8"\r\n',
                b"Content-Transfer-Encoding: base64\r\n\r\n",
                base64_lines(body_text),
            ]
        )

    def send(self, address: Address, chosen: str, url: str) -> bool:
        """Send the mail; False (logged, without the address) when the relay did not take it."""
        relay = Relay(self.settings.mail)
        try:
            begun = relay.begin(self.settings.site.author_email, address)
            if isinstance(begun, Transaction):
                begun = begun.send(self.message(address, chosen, url, datetime.now(UTC)))
        except RelayError as exc:
            log.error("confirmation mail not sent: %s", exc)
            return False
        finally:
            relay.close()
        if begun.outcome is not Outcome.SENT:
            log.error("confirmation mail not sent: %s", begun.reply)
            return False
        return True
