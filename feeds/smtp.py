"""One SMTP relay connection, and each message's transaction on it, phase by phase.

A transaction ends in one of four outcomes, and only the reply decides: SENT (250 to the
final "."), REFUSED (a 5xx to the recipient or to its message: permanent), DEFERRED (a 4xx,
or a drop before the final "." left: nothing can have been delivered, so it may be tried
again), IN_DOUBT (the final "." left and no reply came: the relay may hold the message).
A relay that cannot be used at all (refused or timed-out connection, TLS, login, or a
sender it refuses) raises RelayError: no message is at fault.

Timeouts follow RFC 5321 4.5.3.2 (5 minutes for commands, 10 after the final ".").
"""

from __future__ import annotations

import contextlib
import enum
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass

from .config import MailSettings
from .errors import SendError
from .mail import Address


class RelayError(SendError):
    """The relay cannot take any message: stop, and blame no recipient."""


class Outcome(enum.Enum):
    SENT = "sent"
    REFUSED = "refused"
    DEFERRED = "deferred"
    IN_DOUBT = "in doubt"
    UNSUPPORTED = "unsupported"  # the address needs SMTPUTF8, which the relay does not offer


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reply: str  # the relay's reply ("550 5.1.1 No such user"), or what happened instead

    @property
    def about_address(self) -> bool:
        """A permanent failure caused by the address (not by policy or content): the
        enhanced status code is 5.1.x or 5.2.x, or there is none."""
        found = re.match(r"5\d\d (\d)\.(\d)\.", self.reply)
        return found is None or found[2] in "12"


_QUOTE = re.compile(rb"^\.", re.M)


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}".strip()


class Relay:
    """The SMTP server of the mail settings: connected when first needed, reconnected after a
    drop, one connection for many messages."""

    def __init__(self, settings: MailSettings):
        if not settings.smtp_host:
            raise SendError(
                "no SMTP server is set: set smtp_host in [tool.feeds] or FEEDS_SMTP_HOST"
            )
        self.settings = settings
        self.host = settings.smtp_host
        security = settings.smtp_security
        default_port = {"tls": 465, "starttls": 587}.get(security, 25)
        self.port = settings.smtp_port or default_port
        self.smtp: smtplib.SMTP | None = None

    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def open(self) -> smtplib.SMTP:
        """The connection, opened (and logged in) if it is not. Raises RelayError."""
        if self.smtp is not None:
            return self.smtp
        s = self.settings
        smtp: smtplib.SMTP | None = None
        try:
            if s.smtp_security == "tls":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=s.smtp_timeout)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=s.smtp_timeout)
                if s.smtp_security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo_or_helo_if_needed()
            if s.smtp_user:
                password = s.smtp_password.reveal() if s.smtp_password else ""
                smtp.login(s.smtp_user, password)
        except smtplib.SMTPAuthenticationError as exc:
            _close(smtp)
            raise RelayError(
                f"the SMTP server {self._where()} refused the login of {s.smtp_user}: "
                f"{_reply(exc.smtp_code, exc.smtp_error)} (check smtp_user and "
                "FEEDS_SMTP_PASSWORD); nothing was sent"
            ) from None
        except (ssl.SSLError, smtplib.SMTPNotSupportedError) as exc:
            _close(smtp)
            raise RelayError(
                f"TLS with the SMTP server {self._where()} failed: {exc} "
                "(check smtp_security and smtp_port); nothing was sent"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _close(smtp)
            raise RelayError(
                f"cannot use the SMTP server {self._where()}: {_describe(exc)}"
            ) from None
        self.smtp = smtp
        return smtp

    def begin(self, sender: str, address: Address) -> Result | Transaction:
        """MAIL, RCPT and DATA for one recipient: the open transaction once the relay waits for
        the message (354), or why it does not. Raises RelayError when the relay cannot be used."""
        smtp = self.open()
        smtp.sock.settimeout(self.settings.smtp_timeout)  # type: ignore[union-attr]
        options = []
        if address.smtputf8:
            if not smtp.has_extn("smtputf8"):
                return Result(
                    Outcome.UNSUPPORTED,
                    f"the address needs SMTPUTF8, which {self._where()} does not offer",
                )
            options = ["SMTPUTF8", *(["BODY=8BITMIME"] if smtp.has_extn("8bitmime") else [])]
        try:
            code, text = smtp.mail(sender, options)
            if code != 250:
                self._reset(smtp, code)
                if code >= 500:
                    raise RelayError(
                        f"the SMTP server {self._where()} refuses the sender {sender}: "
                        f"{_reply(code, text)} (check author_email); nothing more was sent"
                    )
                return Result(Outcome.DEFERRED, _reply(code, text))
            code, text = smtp.rcpt(address.envelope)
            if code not in (250, 251):
                return self._refused(smtp, code, text)
            smtp.sock.settimeout(min(self.settings.smtp_timeout, 120))  # type: ignore[union-attr]
            smtp.putcmd("data")
            code, text = smtp.getreply()
            if code != 354:
                return self._refused(smtp, code, text)
        except smtplib.SMTPServerDisconnected as exc:
            self.drop()
            return Result(Outcome.DEFERRED, f"the connection closed: {exc}")
        return Transaction(self, smtp)

    def _refused(self, smtp: smtplib.SMTP, code: int, text: bytes) -> Result:
        self._reset(smtp, code)
        outcome = Outcome.REFUSED if code >= 500 else Outcome.DEFERRED
        return Result(outcome, _reply(code, text))

    def _reset(self, smtp: smtplib.SMTP, code: int) -> None:
        if code == 421:  # the relay is closing the connection
            self.drop()
            return
        try:
            smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.drop()

    def drop(self) -> None:
        _close(self.smtp)
        self.smtp = None

    def close(self) -> None:
        """QUIT, politely; a relay that is gone already is no error."""
        if self.smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.smtp.quit()
            self.drop()


class Transaction:
    """A transaction whose relay waits for the message: `send` it, once."""

    def __init__(self, relay: Relay, smtp: smtplib.SMTP):
        self.relay = relay
        self.smtp = smtp

    def send(self, data: bytes) -> Result:
        smtp, timeouts = self.smtp, self.relay.settings
        payload = _QUOTE.sub(b"..", data)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        try:
            smtp.sock.settimeout(min(timeouts.smtp_timeout, 180))  # type: ignore[union-attr]
            smtp.send(payload + b".\r\n")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.relay.drop()  # the final "." did not leave: the relay cannot have the message
            return Result(Outcome.DEFERRED, f"the connection closed while sending: {exc}")
        try:
            smtp.sock.settimeout(timeouts.smtp_data_timeout)  # type: ignore[union-attr]
            code, text = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.relay.drop()
            return Result(Outcome.IN_DOUBT, f"no reply after the message was sent: {exc}")
        if code == 250:
            return Result(Outcome.SENT, _reply(code, text))
        if code == 421:
            self.relay.drop()
        return Result(Outcome.REFUSED if code >= 500 else Outcome.DEFERRED, _reply(code, text))


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
