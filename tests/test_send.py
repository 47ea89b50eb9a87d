"""`feeds send` against a real SMTP server: exactly once per subscriber, whatever happens."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from feeds.archive import load_archive
from feeds.build import build
from feeds.cli import main
from feeds.config import Settings, make_settings
from feeds.model import LANGS
from feeds.newsletter import render_newsletter
from feeds.send import unsubscribe_token
from feeds.templating import make_environment

from .conftest import SEEDS
from .smtp_server import Recorder, SMTPServer

BASE = "https://example.org/"
SECRET = "s3cret"

pytestmark = pytest.mark.slow  # a real SMTP server, and processes killed mid-send


def site(**kw) -> Settings:
    values = dict(
        base_url=BASE,
        author_name="Notes",
        author_email="notes@example.org",
        unsubscribe_url="https://example.org/unsub",
        unsubscribe_secret=SECRET,
    )
    values.update(kw)
    return make_settings(**values)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("send")
    shutil.copytree(SEEDS, tmp / "seeds")
    build(tmp / "seeds", tmp / "dist", site())
    return tmp / "dist"


def subscribers_file(folder: Path, count: int = 50) -> Path:
    lines = ["email,lang,name"]
    for n in range(count):
        lines.append(f"reader{n:02d}@example.com,{('ko', 'en', 'both')[n % 3]},Reader {n}")
    path = folder / "subscribers.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def expected_messages(count: int = 50) -> Counter:
    wanted = Counter()
    for n in range(count):
        for lang in ("ko", "en"):
            if ("ko", "en", "both")[n % 3] in (lang, "both"):
                wanted[(f"reader{n:02d}@example.com", lang)] += 1
    return wanted


def env_for(server: SMTPServer) -> dict[str, str]:
    return {
        **os.environ,
        "FEEDS_BASE_URL": BASE,
        "FEEDS_SMTP_HOST": "127.0.0.1",
        "FEEDS_SMTP_PORT": str(server.port),
        "FEEDS_SMTP_SECURITY": "none",
        "FEEDS_UNSUBSCRIBE_URL": "https://example.org/unsub",
        "FEEDS_UNSUBSCRIBE_SECRET": SECRET,
        "FEEDS_AUTHOR_EMAIL": "notes@example.org",
    }


def received(recorder: Recorder) -> Counter:
    return Counter(
        (msg["To"].addresses[0].addr_spec, msg["Content-Language"]) for _, msg in recorder.messages
    )


def run_send(server, tmp_path, dist, *extra, digest="2024-11-07", yes=True, **kw):
    subscribers = str(tmp_path / "subscribers.csv")
    args = ["send", digest, "--subscribers", subscribers, "--dist", str(dist), *extra]
    return CliRunner(env=env_for(server)).invoke(main, [*args, "--yes"] if yes else args, **kw)


def test_fifty_subscribers_get_one_correct_message_each(tmp_path, dist):
    subscribers_file(tmp_path)
    with SMTPServer(Recorder()) as server:
        result = run_send(server, tmp_path, dist)
        assert result.exit_code == 0, result.output
        assert received(server.recorder) == expected_messages()
        assert server.recorder.greetings == 1  # one connection for all 66 messages
        assert result.stdout.strip().endswith("Sent 66, already sent before 0, skipped 0, failed 0")
        for rcpts, msg in server.recorder.messages:
            address = msg["To"].addresses[0].addr_spec
            assert rcpts == (address,)
            assert msg["To"].addresses[0].display_name.startswith("Reader ")
            token = unsubscribe_token(SECRET, address)
            assert msg["List-Unsubscribe"].endswith(f"<https://example.org/unsub?token={token}>")
            text, html = (p.get_content() for p in msg.get_payload())
            assert f"https://example.org/unsub?token={token}" in html and token in text
            assert "__RECIPIENT_TOKEN__" not in html + text + str(msg)
            assert msg["Message-ID"].endswith("@example.org>")
        ids = [msg["Message-ID"] for _, msg in server.recorder.messages]
        assert len(set(ids)) == len(ids)
        again = run_send(server, tmp_path, dist)
        assert again.exit_code == 0
        assert again.stdout.strip().endswith("Sent 0, already sent before 66, skipped 0, failed 0")
        assert len(server.recorder.messages) == 66


def test_tokens_cannot_be_forged_for_another_address():
    assert unsubscribe_token(SECRET, "a@example.com") != unsubscribe_token(SECRET, "b@example.com")
    assert unsubscribe_token(SECRET, "a@example.com") != unsubscribe_token("other", "a@example.com")


def test_451_and_a_dropped_connection_then_rerun_completes(tmp_path, dist):
    subscribers_file(tmp_path)
    recorder = Recorder(fail_with_451={7}, drop_after=20)
    with SMTPServer(recorder) as server:
        first = run_send(server, tmp_path, dist)
        assert first.exit_code == 0, first.output  # the 451 and the drop were retried in the run
        assert recorder.dropped and recorder.data_count == 66 + 1
        assert recorder.greetings == 2  # reconnected once, after the drop
        second = run_send(server, tmp_path, dist)
        assert second.exit_code == 0
        assert second.stdout.strip().endswith("Sent 0, already sent before 66, skipped 0, failed 0")
    assert received(recorder) == expected_messages()  # each recipient exactly once


def test_permanent_failure_is_recorded_not_retried(tmp_path, dist):
    subscribers_file(tmp_path, 3)

    class Refusing(Recorder):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.startswith("reader01"):
                return "550 No such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    recorder = Refusing()
    with SMTPServer(recorder) as server:
        result = run_send(server, tmp_path, dist)
        assert result.exit_code == 1
        assert "Failed: reader01@example.com (en): 550 No such user" in result.stderr
        again = run_send(server, tmp_path, dist)
        assert "failed permanently in an earlier run" in again.stderr
    assert Counter(recorder.recipients()) == Counter(
        {"reader00@example.com": 1, "reader02@example.com": 2}
    )


def ledger_rows(tmp_path: Path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "subscribers.ledger.sqlite") as db:
        return db.execute(
            "SELECT lang, email, message_id, status, in_doubt FROM messages"
        ).fetchall()


def send_process(server, tmp_path, dist, *extra) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "feeds",
        "send",
        "2024-11-07",
        "--subscribers",
        str(tmp_path / "subscribers.csv"),
        "--dist",
        str(dist),
        "--yes",
        *extra,
    ]
    return subprocess.Popen(
        args, env=env_for(server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.mark.parametrize("stall_at", [1, 13, 40])
def test_killed_during_data_leaves_one_in_doubt_message(tmp_path, dist, stall_at):
    subscribers_file(tmp_path)
    recorder = Recorder(stall_at=stall_at)
    with SMTPServer(recorder) as server:
        process = send_process(server, tmp_path, dist)
        assert recorder.in_data.wait(60)
        process.send_signal(signal.SIGKILL)
        process.wait()
        recorder.release.set()
        time.sleep(0.2)
        in_flight = recorder.messages[-1][1]
        rerun = send_process(server, tmp_path, dist)
        assert rerun.wait(120) == 0
    counts = received(recorder)
    duplicate = (in_flight["To"].addresses[0].addr_spec, in_flight["Content-Language"])
    assert set(counts) == set(expected_messages())
    assert {k: v for k, v in counts.items() if v > 1} == {duplicate: 2}
    ids = [
        msg["Message-ID"]
        for _, msg in recorder.messages
        if (msg["To"].addresses[0].addr_spec, msg["Content-Language"]) == duplicate
    ]
    assert ids[0] == ids[1]
    doubtful = [row for row in ledger_rows(tmp_path) if row[4]]
    assert [(row[1], row[0], row[3]) for row in doubtful] == [(duplicate[0], duplicate[1], "sent")]
    assert all(row[3] == "sent" for row in ledger_rows(tmp_path))


@pytest.mark.parametrize("after", [5, 30])
def test_killed_between_messages_then_rerun_sends_each_missing_once(tmp_path, dist, after):
    subscribers_file(tmp_path)
    recorder = Recorder()
    with SMTPServer(recorder) as server:
        process = send_process(server, tmp_path, dist, "--rate", "40")
        deadline = time.monotonic() + 60
        while len(recorder.messages) < after and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert 0 < len(recorder.messages) < 66
        assert send_process(server, tmp_path, dist).wait(120) == 0
    counts = received(recorder)
    assert set(counts) == set(expected_messages())
    assert sum(counts.values()) - len(counts) <= 1  # at most the one in flight at the kill


def test_dry_run_writes_outbox_and_sends_nothing(tmp_path, dist):
    subscribers_file(tmp_path, 6)
    with SMTPServer(Recorder()) as server:
        result = run_send(server, tmp_path, dist, "--dry-run", "--outbox", str(tmp_path / "outbox"))
        assert result.exit_code == 0, result.output
        assert server.recorder.messages == []
    files = sorted(
        p.relative_to(tmp_path / "outbox").as_posix() for p in (tmp_path / "outbox").rglob("*.eml")
    )
    assert files == [
        "2024-11-07/en/reader01@example.com.eml",
        "2024-11-07/en/reader02@example.com.eml",
        "2024-11-07/en/reader04@example.com.eml",
        "2024-11-07/en/reader05@example.com.eml",
        "2024-11-07/ko/reader00@example.com.eml",
        "2024-11-07/ko/reader02@example.com.eml",
        "2024-11-07/ko/reader03@example.com.eml",
        "2024-11-07/ko/reader05@example.com.eml",
    ]
    assert not (tmp_path / "subscribers.ledger.sqlite").exists()


def test_invalid_subscribers_are_reported_with_lines(tmp_path, dist):
    (tmp_path / "subscribers.csv").write_text(
        "email,lang\nok@example.com,ko\nnot-an-address,en\nok@example.com,en\nx@example.com,fr\n"
    )
    with SMTPServer(Recorder()) as server:
        result = run_send(server, tmp_path, dist)
        assert result.exit_code == 1
        assert server.recorder.messages == []
    path = tmp_path / "subscribers.csv"
    assert result.stderr.splitlines()[:3] == [
        f'Error: {path}:3: expected an email address, found "not-an-address"',
        f"Error: {path}:4: ok@example.com is already listed at line 2",
        f'Error: {path}:5: expected the language ko, en or both, found "fr"',
    ]


def test_unsubscribed_addresses_are_never_mailed(tmp_path, dist):
    subscribers_file(tmp_path, 6)
    (tmp_path / "unsubscribed.txt").write_text("READER00@example.com\nreader05@example.com\n")
    with SMTPServer(Recorder()) as server:
        result = run_send(
            server, tmp_path, dist, "--unsubscribed", str(tmp_path / "unsubscribed.txt")
        )
        assert result.exit_code == 0
        assert "reader00@example.com" not in server.recorder.recipients()
        assert "reader05@example.com" not in server.recorder.recipients()
        assert "skipped 2" in result.stdout


def test_unbuilt_digest_is_refused(tmp_path, dist):
    subscribers_file(tmp_path, 2)
    with SMTPServer(Recorder()) as server:
        result = run_send(server, tmp_path, dist, digest="2099-01-01")
    assert result.exit_code == 1
    assert (
        "Error: the digest 2099-01-01 has no built" in result.stderr
        and "run feeds build first" in result.stderr
    )


def test_asks_before_sending(tmp_path, dist):
    subscribers_file(tmp_path, 3)
    with SMTPServer(Recorder()) as server:
        result = run_send(server, tmp_path, dist, yes=False, input="n\n")
        assert "Send 4 messages (ko: 2, en: 2) of digest 2024-11-07 via 127.0.0.1?" in result.output
        assert result.exit_code == 1 and server.recorder.messages == []


def test_header_injection_from_a_digest_is_neutralised(tmp_path):
    archive = load_archive(SEEDS).archive
    digest = archive.digests[0]
    evil = replace(
        digest.notes[0],
        title="Title\r\nBcc: victim@example.com",
        authors=("Eve\r\nBcc: victim@example.com",),
    )
    digest = replace(digest, notes=(evil, *digest.notes[1:]))
    settings = site(
        title={"ko": "노트\r\nBcc: victim@example.com", "en": "Notes\nBcc: victim@example.com"},
        author_name="Ed\r\nBcc: victim@example.com",
    )
    env = make_environment(None)
    for lang in LANGS:
        for path, data in render_newsletter(digest, lang, settings.site, env)[0]:
            (tmp_path / "dist" / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "dist" / path).write_bytes(data)
    (tmp_path / "subscribers.csv").write_text(
        'email,lang,name\na@example.com,both,"Al\r\nBcc: victim@example.com"\n'
    )
    raw = b"".join(p.read_bytes() for p in (tmp_path / "dist").rglob("*.eml"))
    assert not any(line.lower().startswith(b"bcc") for line in raw.splitlines())
    with SMTPServer(Recorder()) as server:
        result = run_send(server, tmp_path, tmp_path / "dist")
        assert result.exit_code == 0, result.output
        assert len(server.recorder.messages) == 2
        for rcpts, msg in server.recorder.messages:
            assert rcpts == ("a@example.com",)
            assert not any(line.lower().startswith(b"bcc") for line in msg.as_bytes().splitlines())
            assert msg["Bcc"] is None
            assert all(name.lower() != "bcc" for name in msg)
            assert "\n" not in str(msg["Subject"]) and "\r" not in str(msg["Subject"])
