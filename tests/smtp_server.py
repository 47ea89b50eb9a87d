"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it accepts and can misbehave."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


@dataclass
class Recorder:
    """The handler: records accepted messages; fails, drops or stalls on the ones it is told to."""

    messages: list = field(default_factory=list)
    fail_with_451: set[int] = field(default_factory=set)  # 1-based DATA counts answered 451
    drop_after: int | None = None  # drop the connection at the MAIL after this many accepted
    stall_at: int | None = None  # hold the reply to this DATA until released
    in_data: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    data_count: int = 0
    dropped: bool = False
    greetings: int = 0  # EHLO/HELO commands: one per connection the client opened

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
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_count += 1
        if self.data_count in self.fail_with_451:
            return "451 Requested action aborted: try again later"
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((tuple(envelope.rcpt_tos), message))
        if self.stall_at == self.data_count:
            self.in_data.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return "250 Message accepted"

    def recipients(self) -> list[str]:
        return [rcpt for rcpts, _ in self.messages for rcpt in rcpts]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SMTPServer:
    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self.port = free_port()
        self.controller = Controller(recorder, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.recorder.release.set()
        self.controller.stop()
