"""What the `feeds send` tests share: a built site, subscriber lists, the command as a user runs
it (in this process, or as a process to kill), and what the server and the ledger saw."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from click.testing import CliRunner, Result

from feeds.cli import main
from feeds.config import Settings, make_settings

from .smtp_server import Received, Recorder, SMTPServer

BASE = "https://example.org/"
SECRET = "s3cret"
UNSUB = "https://example.org/unsubscribe"
DB = "subscribers.ledger.sqlite"
"""The subscribers database of a test (in its tmp_path): its send ledger and suppressions."""


def token_of(tmp_path: Path, address: str) -> str:
    """The preferences token the messages to an address carry (its id in the database)."""
    from feeds.tokens import Tokens

    with sqlite3.connect(tmp_path / DB) as db:
        (subscriber_id,) = db.execute(
            "SELECT id FROM subscribers WHERE email=?", (address.casefold(),)
        ).fetchone()
    return Tokens(SECRET).preferences(subscriber_id)


def site(**kw: object) -> Settings:
    values: dict[str, object] = dict(
        base_url=BASE,
        author_name="Notes",
        author_email="notes@example.org",
        unsubscribe_url=UNSUB,
        unsubscribe_mailto="leave@example.org",
        secret_key=SECRET,
    )
    values.update(kw)
    return make_settings(**values)


def subscribers_file(folder: Path, count: int = 50, prefix: str = "reader") -> Path:
    lines = ["email,lang,name"]
    for n in range(count):
        lines.append(f"{prefix}{n:02d}@example.com,{('ko', 'en', 'both')[n % 3]},Reader {n}")
    path = folder / "subscribers.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def expected_messages(count: int = 50, prefix: str = "reader") -> Counter[tuple[str, str]]:
    wanted: Counter[tuple[str, str]] = Counter()
    for n in range(count):
        for lang in ("ko", "en"):
            if ("ko", "en", "both")[n % 3] in (lang, "both"):
                wanted[(f"{prefix}{n:02d}@example.com", lang)] += 1
    return wanted


def env_for(server: SMTPServer | None, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "FEEDS_BASE_URL": BASE,
        "FEEDS_SMTP_HOST": "127.0.0.1",
        "FEEDS_SMTP_PORT": str(server.port if server else 9),  # 9: discard, refused here
        "FEEDS_SMTP_SECURITY": "none",
        "FEEDS_UNSUBSCRIBE_URL": UNSUB,
        "FEEDS_UNSUBSCRIBE_MAILTO": "leave@example.org",
        "FEEDS_SECRET_KEY": SECRET,
        "FEEDS_AUTHOR_EMAIL": "notes@example.org",
        "FEEDS_SMTP_TIMEOUT": "20",  # a test that hangs fails in seconds, not minutes
    }
    return {**env, **extra}


def received(recorder: Recorder) -> Counter[tuple[str, str]]:
    return Counter(
        (m.message["To"].addresses[0].addr_spec, m.message["Content-Language"])
        for m in recorder.messages
    )


def run_send(
    server: SMTPServer | None,
    tmp_path: Path,
    dist: Path,
    *extra: str,
    digest: str = "2024-11-07",
    yes: bool = True,
    env: dict[str, str] | None = None,
    **kw: object,
) -> Result:
    subscribers = str(tmp_path / "subscribers.csv")
    args = ["send", digest, "--subscribers", subscribers, "--dist", str(dist), *extra]
    if "--db" not in extra:
        args += ["--db", str(tmp_path / DB)]
    return CliRunner(env=env or env_for(server)).invoke(
        main, [*args, "--yes"] if yes else args, **kw
    )


def send_process(
    server: SMTPServer, tmp_path: Path, dist: Path, *extra: str
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "feeds", "send", "2024-11-07"]
    args += ["--subscribers", str(tmp_path / "subscribers.csv"), "--dist", str(dist), "--yes"]
    args += ["--db", str(tmp_path / DB)]
    return subprocess.Popen(
        [*args, *extra], env=env_for(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def ledger_rows(tmp_path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(tmp_path / DB) as db:
        return db.execute(
            "SELECT lang, email, message_id, status, in_doubt, attempts, first_attempt_at, "
            "last_attempt_at, sent_at FROM messages ORDER BY email, lang"
        ).fetchall()


def by_recipient(recorder: Recorder) -> dict[str, list[Received]]:
    found: dict[str, list[Received]] = {}
    for m in recorder.messages:
        for rcpt in m.rcpt_tos:
            found.setdefault(rcpt, []).append(m)
    return found
