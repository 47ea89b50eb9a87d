"""`feeds send` against a real SMTP server: exactly once per subscriber, whatever happens."""

from __future__ import annotations

import shutil
import signal
import time
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from feeds.archive import load_archive
from feeds.build import build
from feeds.model import LANGS
from feeds.newsletter import render_newsletter
from feeds.templating import make_environment
from feeds.tokens import BadToken, Tokens

from .conftest import SEEDS
from .sending import (
    SECRET,
    UNSUB,
    expected_messages,
    ledger_rows,
    received,
    run_send,
    send_process,
    site,
    subscribers_file,
    token_of,
)
from .smtp_server import Recorder, SMTPServer

pytestmark = pytest.mark.slow  # a real SMTP server, and processes killed mid-send


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("send")
    shutil.copytree(SEEDS, tmp / "seeds")
    build(tmp / "seeds", tmp / "dist", site())
    return tmp / "dist"


def test_fifty_subscribers_get_one_correct_message_each(tmp_path, dist):
    subscribers_file(tmp_path)
    with SMTPServer(Recorder()) as server:
        result = run_send(server, tmp_path, dist)
        assert result.exit_code == 0, result.output
        assert received(server.recorder) == expected_messages()
        assert server.recorder.greetings == 1  # one connection for all 66 messages
        assert result.stdout.strip().endswith("Sent 66, already sent before 0, skipped 0, failed 0")
        for m in server.recorder.messages:
            msg = m.message
            address = msg["To"].addresses[0].addr_spec
            assert m.rcpt_tos == (address,) and m.mail_from == "notes@example.org"
            assert msg["To"].addresses[0].display_name.startswith("Reader ")
            token = token_of(tmp_path, address)
            text, html = (p.get_content() for p in msg.get_payload())
            assert f"{UNSUB}?token={token}" in html and token in text
            assert b"__RECIPIENT_TOKEN__" not in m.raw
            assert msg["Message-ID"].endswith("@example.org>")
        ids = [m.message["Message-ID"] for m in server.recorder.messages]
        assert len(set(ids)) == len(ids)
        again = run_send(server, tmp_path, dist)
        assert again.exit_code == 0
        assert again.stdout.strip().endswith("Sent 0, already sent before 66, skipped 0, failed 0")
        assert len(server.recorder.messages) == 66


def test_list_unsubscribe_goes_on_the_wire_as_plain_ascii_uris(tmp_path, dist):
    """RFC 2369: `<mailto:…>, <https://…>`, folded only after the comma, never RFC 2047 encoded
    words (which hid the URIs from mail clients for every address of 10 characters or more)."""
    (tmp_path / "subscribers.csv").write_text(
        "email,lang,name\n"
        "a.very.long.address.for.folding@subdomain.example.com,both,김 민수\n"
        "ab@x.io,en,\n"
    )
    with SMTPServer(Recorder()) as server:
        assert run_send(server, tmp_path, dist).exit_code == 0
        dry = run_send(server, tmp_path, dist, "--dry-run", "--outbox", str(tmp_path / "out"))
        assert dry.exit_code == 0, dry.output
    raws = [m.raw for m in server.recorder.messages]
    raws += [p.read_bytes() for p in sorted((tmp_path / "out").rglob("*.eml"))]
    assert len(raws) == 6
    for raw in raws:
        head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # every header is ASCII
        line = next(h for h in head.split("\r\n") if h.startswith("List-Unsubscribe:"))
        rest = head.split(line, 1)[1].split("\r\n")
        value = line + "".join(r for r in rest[1:2] if r.startswith(" "))
        assert "=?" not in value
        assert value.startswith("List-Unsubscribe: <mailto:leave@example.org?subject=unsubscribe>,")
        uris = [u.strip().strip("<>") for u in value.split(":", 1)[1].split(",")]
        https = urlsplit(uris[1])
        assert (https.scheme, https.netloc, https.path) == ("https", "example.org", "/unsubscribe")
        to = head.split("\r\nTo: ", 1)[1].split("\r\n")[0]
        address = (
            "ab@x.io"
            if "ab@x.io" in to
            else "a.very.long.address.for.folding@subdomain.example.com"
        )
        assert parse_qs(https.query) == {"token": [token_of(tmp_path, address)]}
        assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in head


def test_the_date_on_the_wire_is_when_it_was_sent(tmp_path, dist):
    subscribers_file(tmp_path, 1)
    with SMTPServer(Recorder()) as server:
        before = datetime.now(UTC).replace(microsecond=0)
        assert run_send(server, tmp_path, dist).exit_code == 0
        after = datetime.now(UTC)
    (m,) = server.recorder.messages
    when = parsedate_to_datetime(m.raw_header("Date").decode().split(":", 1)[1].strip())
    assert before <= when <= after  # not the digest's date (2024-11-07)
    built = (dist / "newsletters" / "2024-11-07" / "ko.eml").read_bytes()
    assert b"Date: Thu, 07 Nov 2024 00:00:00 +0900" in built  # the build keeps its content date


def test_the_html_part_carries_only_its_own_headers(tmp_path, dist):
    subscribers_file(tmp_path, 1)
    with SMTPServer(Recorder()) as server:
        assert run_send(server, tmp_path, dist).exit_code == 0
    raw = server.recorder.messages[0].raw
    assert raw.count(b"MIME-Version:") == 1 and raw.startswith(b"From: ")
    text, html = server.recorder.messages[0].message.get_payload()
    assert list(html.keys()) == ["Content-Type", "Content-Transfer-Encoding"]
    assert list(text.keys()) == ["Content-Type", "Content-Transfer-Encoding"]


def test_tokens_name_subscribers_opaquely_and_cannot_be_forged():
    tokens = Tokens(SECRET)
    a, b = tokens.preferences("0123456789abcdef"), tokens.preferences("fedcba9876543210")
    assert a != b and tokens.read_preferences(a) == "0123456789abcdef"
    for forged in (Tokens("other").preferences("0123456789abcdef"), a[:-2] + "xx", b + "x"):
        with pytest.raises(BadToken):
            tokens.read_preferences(forged)
    with pytest.raises(BadToken):  # a token for another purpose is worth nothing here
        tokens.read_preferences(tokens.confirmation("0123456789abcdef", "n"))


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


def test_killed_during_data_leaves_one_in_doubt_message_cases(tmp_path, dist):
    """Three kill points within the DATA phase (first, middle, late message)."""
    for stall_at in (1, 13, 40):
        work = tmp_path / f"kill-{stall_at}"
        work.mkdir()
        _killed_during_data(work, dist, stall_at)


def _killed_during_data(tmp_path: Path, dist: Path, stall_at: int) -> None:
    subscribers_file(tmp_path)
    recorder = Recorder(stall_at=stall_at)
    with SMTPServer(recorder) as server:
        process = send_process(server, tmp_path, dist)
        assert recorder.in_data.wait(60)
        process.send_signal(signal.SIGKILL)
        process.wait()
        recorder.release.set()
        time.sleep(0.2)
        in_flight = recorder.messages[-1].message
        rerun = send_process(server, tmp_path, dist)
        _, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
    counts = received(recorder)
    duplicate = (in_flight["To"].addresses[0].addr_spec, in_flight["Content-Language"])
    assert set(counts) == set(expected_messages())
    assert {k: v for k, v in counts.items() if v > 1} == {duplicate: 2}
    ids = [
        m.message["Message-ID"]
        for m in recorder.messages
        if (m.message["To"].addresses[0].addr_spec, m.message["Content-Language"]) == duplicate
    ]
    assert ids[0] == ids[1]
    doubtful = [row for row in ledger_rows(tmp_path) if row[4]]
    assert [(row[1], row[0], row[3]) for row in doubtful] == [(duplicate[0], duplicate[1], "sent")]
    assert all(row[3] == "sent" for row in ledger_rows(tmp_path))
    assert f"Sent again (in doubt from an earlier run): {duplicate[0]} ({duplicate[1]})" in (
        err.decode()
    )


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
        rerun = send_process(server, tmp_path, dist)
        assert rerun.wait(120) == 0
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
    assert not list(tmp_path.glob("subscribers.ledger.sqlite*"))  # a dry run changes nothing


def test_dry_run_names_never_collide(tmp_path, dist):
    (tmp_path / "subscribers.csv").write_text(
        "email,lang\na'b@example.com,ko\na_b@example.com,ko\na&b@example.com,ko\na/b@example.com,ko\n"
    )
    with SMTPServer(Recorder()) as server:
        result = run_send(server, tmp_path, dist, "--dry-run", "--outbox", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    written = {p.name: p.read_bytes() for p in (tmp_path / "o").rglob("*.eml")}
    assert len(written) == 4
    tos = {raw.split(b"\r\nTo: ", 1)[1].split(b"\r\n")[0] for raw in written.values()}
    assert tos == {b"a'b@example.com", b"a_b@example.com", b"a&b@example.com", b"a/b@example.com"}


def test_invalid_subscribers_are_reported_with_lines(tmp_path, dist):
    (tmp_path / "subscribers.csv").write_text(
        "email,lang\nok@example.com,ko\nnot-an-address,en\nOK@example.com,en\nx@example.com,fr\n"
    )
    with SMTPServer(Recorder()) as server:
        result = run_send(server, tmp_path, dist)
        assert result.exit_code == 1
        assert server.recorder.messages == []
    path = tmp_path / "subscribers.csv"
    assert result.stderr.splitlines()[:3] == [
        f'Error: {path}:3: expected an email address, found "not-an-address": '
        "An email address must have an @-sign.",
        f"Error: {path}:4: OK@example.com is already listed at line 2",
        f'Error: {path}:5: expected the language ko, en or both, found "fr"',
    ]


def test_line_numbers_hold_with_carriage_returns_and_line_separators_in_names(tmp_path, dist):
    (tmp_path / "subscribers.csv").write_bytes(
        'email,lang,name\na@example.com,ko,"Al\rBcc: x@example.com"\n'
        "b@example.com,ko,Bo\u2028Lee\nnot-an-address,ko,C\n".encode()
    )
    with SMTPServer(Recorder()) as server:
        result = run_send(server, tmp_path, dist)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith(
        f"Error: {tmp_path / 'subscribers.csv'}:4: expected an email address"
    )


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
        for m in server.recorder.messages:
            assert m.rcpt_tos == ("a@example.com",)
            assert not any(line.lower().startswith(b"bcc") for line in m.raw.splitlines())
            assert m.message["Bcc"] is None
            assert "\n" not in str(m.message["Subject"]) and "\r" not in str(m.message["Subject"])
