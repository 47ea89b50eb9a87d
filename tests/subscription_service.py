"""The subscription service as its author runs it (`feeds subscribers serve`, waitress) on a free
port of 127.0.0.1, and a plain HTTP client that sees what a browser or a mail client's
one-click POST sees: status, headers, body, no redirects followed, no cookies kept."""

from __future__ import annotations

import base64
import http.client
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from .sending import SECRET
from .smtp_server import Received, SMTPServer, free_port

DB = "subscribers.sqlite"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: str

    @property
    def text(self) -> str:
        """The body without its markup, spaces collapsed: what a reader reads."""
        bare = re.sub(r"<(script|style)\b.*?</\1>", " ", self.body, flags=re.S | re.I)
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", bare)).strip()

    def form_token(self) -> str:
        found = re.search(r'name="form_token" value="([^"]+)"', self.body)
        assert found, f"no form token on the page: {self.text[:300]}"
        return found[1]


def service_env(smtp: SMTPServer | None, url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "FEEDS_BASE_URL": "https://example.org/",
        "FEEDS_SUBSCRIPTIONS_URL": url,
        "FEEDS_SECRET_KEY": SECRET,
        "FEEDS_AUTHOR_NAME": "ML Notes",
        "FEEDS_AUTHOR_EMAIL": "notes@example.org",
        "FEEDS_SMTP_HOST": "127.0.0.1",
        "FEEDS_SMTP_PORT": str(smtp.port if smtp else 9),
        "FEEDS_SMTP_SECURITY": "none",
        "FEEDS_SMTP_TIMEOUT": "20",
    }
    env.pop("FEEDS_UNSUBSCRIBE_URL", None)
    return {**env, **extra}


class Service:
    """`feeds subscribers serve` in its own process, while the `with` block runs."""

    def __init__(self, folder: Path, smtp: SMTPServer | None, **env: str):
        self.folder = folder
        self.db = folder / DB
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = service_env(smtp, self.url, **env)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        args = [sys.executable, "-m", "feeds", "subscribers", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*args, "--db", str(self.db)],
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited: {self.process.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the service did not listen within 30 s")

    def kill(self) -> None:
        """kill -9: no chance to tidy up."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> tuple[bytes, bytes]:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
        out, err = self.process.communicate(timeout=10)
        return out, err

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()

    # -- what a browser and a mail client do -------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        parts = urlsplit(path)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = dict(headers or {})
        if isinstance(body, dict):
            body = urlencode(body).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, target, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        found = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, found, data.decode("utf-8", "replace"))

    def get(self, path: str, **headers: str) -> Reply:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, body: bytes | dict[str, str] | None = None, **headers: str) -> Reply:
        return self.request("POST", path, body, headers)

    def sign_up(self, email: str, lang: str = "ko", **fields: str) -> Reply:
        return self.post("/subscribe", {"email": email, "lang": lang, **fields})

    def confirm(self, link: str) -> Reply:
        """Open a confirmation link, then press its Confirm button."""
        shown = self.get(link)
        assert shown.status == 200, shown.text
        return self.post(link, {"form_token": shown.form_token()})

    # -- what the database holds -------------------------------------------------------------

    def rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db) as db:
            return db.execute(sql, args).fetchall()

    def status_of(self, email: str) -> str | None:
        found = self.rows("SELECT status FROM subscribers WHERE email=?", email.casefold())
        return str(found[0][0]) if found else None


def mail_text(received: Received) -> str:
    """The decoded text of a confirmation mail (one text/plain part, base64)."""
    message: Message = message_from_bytes(received.raw)
    payload = message.get_payload()
    assert isinstance(payload, str)
    return base64.b64decode(payload).decode("utf-8")


def confirmation_link(received: Received) -> str:
    found = re.search(r"https?://\S+/confirm/\S+", mail_text(received))
    assert found, mail_text(received)
    return found[0]
