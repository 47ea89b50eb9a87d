"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it accepts and can misbehave."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    """One message the server accepted, exactly as it came over the wire."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes  # the DATA as received (headers exactly as the client wrote them)
    options: tuple[str, ...]  # MAIL FROM options (SMTPUTF8, BODY=8BITMIME)

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]

    def raw_header(self, name: str) -> bytes:
        """The header's bytes as sent, folding and all (name and value, without the last CRLF)."""
        head = self.raw.split(b"\r\n\r\n", 1)[0]
        found, collecting = [], False
        for line in head.split(b"\r\n"):
            if line[:1] in (b" ", b"\t"):
                if collecting:
                    found.append(line)
                continue
            collecting = line.lower().startswith(name.lower().encode() + b":")
            if collecting:
                found.append(line)
        return b"\r\n".join(found)


@dataclass
class Recorder:
    """The handler: records accepted messages; fails, drops or stalls on the ones it is told to."""

    messages: list[Received] = field(default_factory=list)
    fail_with_451: set[int] = field(default_factory=set)  # 1-based DATA counts answered 451
    refuse: dict[str, str] = field(default_factory=dict)  # address -> RCPT reply
    refuse_data: dict[str, str] = field(default_factory=dict)  # address -> reply after DATA
    drop_after: int | None = None  # drop the connection at the MAIL after this many accepted
    drop_before_reply: set[int] = field(default_factory=set)  # DATA counts: keep, then hang up
    stall_at: int | None = None  # hold the reply to this DATA until released
    slow_reply: float = 0.0  # seconds before each reply to DATA
    in_data: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    data_count: int = 0
    dropped: bool = False
    greetings: int = 0  # EHLO/HELO commands: one per connection the client opened
    logins: int = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.greetings += 1
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        self.greetings += 1
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if (
            self.drop_after is not None
            and not self.dropped
            and len(self.messages) >= self.drop_after
        ):
            self.dropped = True
            server.transport.close()
            return "421 closing"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_count += 1
        count = self.data_count
        if count in self.fail_with_451:
            return "451 Requested action aborted: try again later"
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.refuse_data:
                return self.refuse_data[rcpt]
        raw = envelope.original_content or envelope.content
        self.messages.append(
            Received(
                envelope.mail_from, tuple(envelope.rcpt_tos), raw, tuple(envelope.mail_options)
            )
        )
        if count in self.drop_before_reply:
            server.transport.close()  # stored, and the client never hears so
            return "250 Message accepted"
        if self.stall_at == count:
            self.in_data.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        if self.slow_reply:
            await asyncio.sleep(self.slow_reply)
        return "250 Message accepted"

    def recipients(self) -> list[str]:
        return [rcpt for m in self.messages for rcpt in m.rcpt_tos]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SMTPServer:
    """The server on a free port of 127.0.0.1, while the `with` block runs.

    login: (user, password) it requires (AUTH PLAIN/LOGIN over plain text, as tests may);
    smtputf8: whether it offers SMTPUTF8.
    """

    def __init__(
        self,
        recorder: Recorder,
        login: tuple[str, str] | None = None,
        smtputf8: bool = True,
    ):
        self.recorder = recorder
        self.port = free_port()
        kwargs: dict = {"enable_SMTPUTF8": smtputf8}
        if login is not None:

            def authenticate(server, session, envelope, mechanism, data):
                recorder.logins += 1
                given = (
                    (_text(data.login), _text(data.password))
                    if isinstance(data, LoginPassword)
                    else None
                )
                return AuthResult(success=given == login, handled=False)

            kwargs |= {
                "auth_required": True,
                "auth_require_tls": False,
                "authenticator": authenticate,
            }
        self.controller = Controller(recorder, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.recorder.release.set()
        self.controller.stop()
