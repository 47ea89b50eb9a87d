"""`feeds send`: mail a built newsletter to every subscriber over SMTP, once each.

Guarantees, with the store (feeds.store) as the record of every message:
- a message the relay accepted (250) is never sent again for that digest and language;
- a message whose data left without a reply is in doubt: it is not tried again in the run,
  and a later run sends it again with the same Message-ID; the ledger and the summary say so;
- a relay that cannot be used (connection, TLS, login) stops the run at once and blames no
  recipient; only a 5xx to a recipient or its message fails that recipient, and an address
  refused for good is suppressed for every later send;
- nobody unsubscribed or suppressed is mailed; a second run on the same ledger refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from .config import Settings, mail_readiness
from .errors import Problem, SendError
from .lists import Chosen, choose, read_subscribers, read_unsubscribed
from .lists import Subscriber as Listed
from .mail import (
    Newsletter,
    Recipient,
    Unsubscribe,
    bounce_sender,
    message_id,
    outbox_name,
    parse_address,
)
from .model import LANGS, Lang
from .smtp import Outcome, Relay, Result, Transaction
from .store import Ledger
from .subscribers import Subscribers
from .tokens import Tokens
from .urls import unsubscribe_url

MAX_ATTEMPTS = 4
BACKOFF_SECONDS = 0.5


@dataclass
class SendSummary:
    """What a run did, message by message."""

    sent: int = 0
    already_sent: int = 0
    failed: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)  # data left, no reply: not tried again
    resent: list[str] = field(default_factory=list)  # in doubt before, sent again now

    @property
    def complete(self) -> bool:
        return not (self.failed or self.deferred or self.in_doubt)


class Sender:
    """One run of one digest over one relay, recorded in the ledger."""

    def __init__(
        self,
        digest_id: str,
        newsletters: dict[Lang, Newsletter],
        settings: Settings,
        ledger: Ledger,
        unsubscribe: Unsubscribe,
        rate: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.digest_id = digest_id
        self.newsletters = newsletters
        self.domain = settings.site.domain
        self.bounce_address = settings.mail.bounce_address
        secret = settings.mail.secret_key
        self.tokens = Tokens(secret.reveal()) if secret else None
        self.relay = Relay(settings.mail)
        self.ledger = ledger
        self.unsubscribe = unsubscribe
        self.rate = rate
        self.sleep = sleep
        self.summary = SendSummary()
        self._last = 0.0

    def run(
        self, recipients: list[Recipient], progress: Callable[[Recipient], None] | None = None
    ) -> SendSummary:
        """Send every recipient their message unless the ledger says it was sent. Raises
        RelayError (with what was done so far in `summary`) when the relay cannot be used."""
        ledger, digest = self.ledger, self.digest_id
        ledger.doubt_left_over(digest)
        try:
            for recipient in recipients:
                status = ledger.status(digest, recipient.lang, recipient.address.key)
                if status == "sent":
                    self.summary.already_sent += 1
                elif status == "failed":
                    self.summary.failed.append(
                        f"{recipient.email} ({recipient.lang}): refused in an earlier run"
                    )
                else:
                    self._deliver(recipient, doubtful=status == "unconfirmed")
                if progress is not None:
                    progress(recipient)
        finally:
            self.relay.close()
        return self.summary

    def _deliver(self, recipient: Recipient, doubtful: bool) -> None:
        newsletter = self.newsletters[recipient.lang]
        key, lang = recipient.address.key, recipient.lang
        msgid = message_id(self.digest_id, lang, recipient.address, self.domain)
        who = f"{recipient.email} ({lang})"
        envelope = newsletter.sender
        if self.tokens is not None and recipient.subscriber_id:
            tag = self.tokens.bounce_tag(recipient.subscriber_id)
            envelope = bounce_sender(self.bounce_address, newsletter.sender, tag)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._pace()
            begun = self.relay.begin(envelope, recipient.address)
            if isinstance(begun, Transaction):
                sent_at = datetime.now(UTC)  # a mail's Date is when it is sent
                data = newsletter.message(recipient, msgid, sent_at, self.unsubscribe)
                self.ledger.attempt(self.digest_id, lang, key, msgid, doubtful)
                result: Result = begun.send(data)
            else:
                result = begun
            if result.outcome is Outcome.DEFERRED and attempt < MAX_ATTEMPTS:
                self.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            self._settle(recipient, msgid, result, doubtful, who)
            return

    def _settle(
        self, recipient: Recipient, msgid: str, result: Result, doubtful: bool, who: str
    ) -> None:
        digest, lang, key = self.digest_id, recipient.lang, recipient.address.key
        outcome, summary = result.outcome, self.summary
        if outcome is Outcome.SENT:
            self.ledger.settle(digest, lang, key, msgid, "sent", None)
            summary.sent += 1
            if doubtful:
                summary.resent.append(who)
        elif outcome is Outcome.IN_DOUBT:
            self.ledger.settle(digest, lang, key, msgid, "unconfirmed", result.reply)
            summary.in_doubt.append(f"{who}: {result.reply}")
        elif outcome is Outcome.REFUSED:
            self.ledger.settle(digest, lang, key, msgid, "failed", result.reply)
            if result.about_address:
                self.ledger.suppress(key, "refused", f"{digest} ({lang}): {result.reply}")
            summary.failed.append(f"{who}: {result.reply}")
        elif outcome is Outcome.UNSUPPORTED:
            self.ledger.settle(digest, lang, key, msgid, "pending", result.reply)
            summary.failed.append(f"{who}: {result.reply}")
        else:
            self.ledger.settle(digest, lang, key, msgid, "pending", result.reply)
            summary.deferred.append(f"{who}: {result.reply}")

    def _pace(self) -> None:
        if self.rate:
            wait = self._last + 1 / self.rate - time.monotonic()
            if wait > 0:
                self.sleep(wait)
        self._last = time.monotonic()


def write_outbox(
    outbox: Path,
    digest_id: str,
    recipients: list[Recipient],
    newsletters: dict[Lang, Newsletter],
    settings: Settings,
    unsubscribe: Unsubscribe,
) -> int:
    """--dry-run: every message that would be sent, as .eml files in OUTBOX/{digest}/{lang}/."""
    sent_at = datetime.now(UTC)
    for recipient in recipients:
        msgid = message_id(digest_id, recipient.lang, recipient.address, settings.site.domain)
        data = newsletters[recipient.lang].message(recipient, msgid, sent_at, unsubscribe)
        path = outbox / digest_id / recipient.lang / outbox_name(recipient.address)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return len(recipients)


def wanted_langs(lang: str | None) -> tuple[Lang, ...]:
    return LANGS if lang is None else tuple(code for code in LANGS if code == lang)


def summary_lines(summary: SendSummary, chosen: Chosen) -> list[str]:
    """What a run prints: each message that did not go as it should, then the totals."""
    lines = [f"Failed: {f}" for f in summary.failed]
    lines += [f"Deferred (the next run tries again): {d}" for d in summary.deferred]
    lines += [
        f"In doubt (sent, no reply came; the next run sends it again, same Message-ID): {d}"
        for d in summary.in_doubt
    ]
    lines += [f"Sent again (in doubt from an earlier run): {r}" for r in summary.resent]
    skipped = chosen.unsubscribed + chosen.suppressed
    totals = (
        f"Sent {summary.sent}, already sent before {summary.already_sent}, skipped {skipped}"
        + (
            f" ({chosen.unsubscribed} unsubscribed, {chosen.suppressed} suppressed)"
            if skipped
            else ""
        )
        + f", failed {len(summary.failed)}"
        + (f", deferred {len(summary.deferred)}" if summary.deferred else "")
        + (f", in doubt {len(summary.in_doubt)}" if summary.in_doubt else "")
    )
    return [*lines, totals]


def unsubscribe_for(settings: Settings) -> Unsubscribe:
    """How this site's recipients leave (see readiness): their own preferences page, which
    one-click unsubscribes, named by a signed token (feeds.tokens)."""
    secret = settings.mail.secret_key
    tokens = Tokens(secret.reveal()) if secret else None

    def token(recipient: Recipient) -> str:
        if tokens is None or not recipient.subscriber_id:
            return "none"
        return tokens.preferences(recipient.subscriber_id)

    site = settings.site
    https = unsubscribe_url(site.subscriptions_url, site.unsubscribe_url)
    return Unsubscribe(https, site.unsubscribe_mailto, token)


@dataclass(frozen=True)
class Request:
    """One `feeds send` as asked on the command line."""

    digest_id: str
    langs: tuple[Lang, ...]
    subscribers: Path | None  # a CSV list; None: the confirmed subscribers in the database
    unsubscribed: Path | None  # None: the setting `unsubscribed`, if any
    skip_invalid: bool
    dist: Path
    db: Path | None  # None: the setting `subscribers_db`
    rate: float | None

    def store(self, settings: Settings) -> Path:
        return self.db or Path(settings.mail.subscribers_db)


class Console(Protocol):
    """What a run tells its user and asks them (the command line, or a test)."""

    def report(self, problems: Iterable[Problem], as_errors: bool) -> None: ...
    def say(self, line: str, result: bool = False) -> None: ...
    def confirm(self, question: str) -> None: ...  # raises to stop
    def progress(self, total: int) -> AbstractContextManager[Callable[[], None]]: ...


def run(request: Request, settings: Settings, console: Console, dry_run: Path | None) -> bool:
    """Send (or with dry_run, write to that outbox) the digest's newsletter to the list, or to
    the confirmed subscribers; True when every message went as it should. Raises SendError
    before sending anything when a list or a setting is not fit to send with."""
    rows: list[Listed] | None = None
    if request.subscribers is not None:
        rows, problems = read_subscribers(request.subscribers)
        console.report(problems, as_errors=not request.skip_invalid)
        if problems and not request.skip_invalid:
            raise SendError(
                f"nothing was sent: {len(problems)} invalid rows (fix them, or pass --skip-invalid)"
            )
    listed = request.unsubscribed or (
        Path(settings.mail.unsubscribed) if settings.mail.unsubscribed else None
    )
    blocked = read_unsubscribed(listed) if listed else set()
    if dry_run is None and (missing := mail_readiness(settings, sending=True)):
        raise SendError.from_problems(Problem(f"nothing was sent: {m}") for m in missing)
    newsletters = {
        code: Newsletter.load(request.dist, request.digest_id, code) for code in request.langs
    }
    unsubscribe = unsubscribe_for(settings)
    book = request.store(settings)
    opened = Ledger.peek(book) if dry_run else Ledger.open(book, f"feeds send {request.digest_id}")
    with opened as ledger:
        people = Subscribers(ledger.db)
        chosen = choose(
            rows if rows is not None else _confirmed(people),
            request.langs,
            blocked | people.left(),
            ledger.is_suppressed,
        )
        if rows is not None and dry_run is None:
            ids = people.listed((r.address, r.lang) for r in chosen.recipients)
        else:
            ids = people.ids()
        chosen.recipients = [
            replace(r, subscriber_id=ids.get(r.address.key, "")) for r in chosen.recipients
        ]
        counts = ", ".join(
            f"{code}: {sum(r.lang == code for r in chosen.recipients)}" for code in request.langs
        )
        if dry_run is not None:
            written = write_outbox(
                dry_run, request.digest_id, chosen.recipients, newsletters, settings, unsubscribe
            )
            console.say(
                f"Dry run: wrote {written} messages ({counts}) to {dry_run / request.digest_id}; "
                f"sent nothing. {chosen.unsubscribed} unsubscribed and {chosen.suppressed} "
                "suppressed skipped.",
                result=True,
            )
            return True
        whom = "" if rows is not None else " to the confirmed subscribers"
        console.confirm(
            f"Send {len(chosen.recipients)} messages ({counts}) of digest {request.digest_id}"
            f"{whom} via {settings.mail.smtp_host}?"
        )
        sender = Sender(request.digest_id, newsletters, settings, ledger, unsubscribe, request.rate)
        try:
            with console.progress(len(chosen.recipients)) as step:
                summary = sender.run(chosen.recipients, progress=lambda _: step())
        finally:
            *details, totals = summary_lines(sender.summary, chosen)
            for line in details:
                console.say(line)
            console.say(totals, result=True)
    return summary.complete


def _confirmed(people: Subscribers) -> list[Listed]:
    """The confirmed subscribers as a list gives them (no name to greet)."""
    found = []
    for row in people.all("confirmed"):
        address = parse_address(row.address)
        if not isinstance(address, str):  # checked when they signed up
            found.append(Listed(address, row.lang, "", 0))
    return found


def suppressions(path: Path, unsuppress: Iterable[str], show: bool) -> Iterator[str]:
    """--unsuppress and --suppressed: allow addresses again, list those suppressed."""
    with Ledger.open(path, "feeds send --suppressed") as ledger:
        for address in unsuppress:
            done = ledger.unsuppress(address.strip().casefold())
            yield f"{'Unsuppressed' if done else 'Not suppressed'}: {address}"
        if show:
            for row in ledger.suppressed():
                yield f"{row.email}\t{row.created_at}\t{row.reason}: {row.detail}"
