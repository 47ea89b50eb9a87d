"""`feeds send` when things go wrong: a relay that refuses the login, is not there, answers
slowly or hangs up; lists that cannot be read; addresses it cannot take; two runs at once.
Each must end in a clear message, with nothing lost and nothing sent twice unflagged."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from feeds.build import build
from feeds.cli import main

from .conftest import SEEDS
from .sending import (
    DB,
    env_for,
    expected_messages,
    ledger_rows,
    received,
    run_send,
    send_process,
    site,
    subscribers_file,
)
from .smtp_server import Recorder, SMTPServer

pytestmark = pytest.mark.slow  # a real SMTP server, and processes killed mid-send


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("faults")
    shutil.copytree(SEEDS, tmp / "seeds")
    build(tmp / "seeds", tmp / "dist", site())
    return tmp / "dist"


def errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


# -- the relay itself -------------------------------------------------------------------------


def test_a_wrong_password_stops_at_once_and_blames_no_one(tmp_path, dist):
    subscribers_file(tmp_path, 30)
    recorder = Recorder()
    with SMTPServer(recorder, login=("postmaster", "right")) as server:
        wrong = env_for(server, FEEDS_SMTP_USER="postmaster", FEEDS_SMTP_PASSWORD="wrong")
        result = run_send(server, tmp_path, dist, env=wrong)
        assert result.exit_code == 1
        assert errors(result) == [
            f"Error: the SMTP server 127.0.0.1:{server.port} refused the login of postmaster: "
            "535 5.7.8 Authentication credentials invalid (check smtp_user and "
            "FEEDS_SMTP_PASSWORD); nothing was sent"
        ]
        assert "Traceback" not in result.output
        assert recorder.greetings == 1 and recorder.messages == []  # one connection, one login
        assert [row for row in ledger_rows(tmp_path) if row[3] == "failed"] == []
        right = env_for(server, FEEDS_SMTP_USER="postmaster", FEEDS_SMTP_PASSWORD="right")
        again = run_send(server, tmp_path, dist, env=right)
        assert again.exit_code == 0, again.output
    assert received(recorder) == expected_messages(30)


def test_no_relay_there_stops_with_one_error(tmp_path, dist):
    subscribers_file(tmp_path, 5)
    result = run_send(None, tmp_path, dist)  # port 9 on 127.0.0.1: connection refused
    assert result.exit_code == 1
    assert errors(result) == ["Error: cannot use the SMTP server 127.0.0.1:9: Connection refused"]
    assert [row for row in ledger_rows(tmp_path) if row[3] != "pending"] == []


def test_starttls_against_a_relay_without_it_is_a_tls_error(tmp_path, dist):
    subscribers_file(tmp_path, 5)
    with SMTPServer(Recorder()) as server:
        result = run_send(
            server, tmp_path, dist, env=env_for(server, FEEDS_SMTP_SECURITY="starttls")
        )
    assert result.exit_code == 1
    (line,) = errors(result)
    assert line.startswith(f"Error: TLS with the SMTP server 127.0.0.1:{server.port} failed: ")
    assert server.recorder.messages == []


def test_a_relay_slow_to_acknowledge_is_in_doubt_not_retried(tmp_path, dist):
    """The final "." left and no reply came within smtp_data_timeout: the relay may hold the
    message. It is not sent again in the run, the ledger and the summary say it is in doubt,
    and only a rerun sends it again, with the same Message-ID."""
    subscribers_file(tmp_path, 3)  # 4 messages
    recorder = Recorder(slow_reply=3.0)
    with SMTPServer(recorder) as server:
        env = env_for(server, FEEDS_SMTP_DATA_TIMEOUT="1")
        result = run_send(server, tmp_path, dist, env=env)
        time.sleep(3.5)  # the server stores each message before its slow reply
        assert result.exit_code == 1
        assert len(recorder.messages) == 4  # one attempt each: no copy sent twice in the run
        doubtful = [line for line in result.stderr.splitlines() if line.startswith("In doubt")]
        assert len(doubtful) == 4
        assert result.stdout.strip().endswith("failed 0, in doubt 4")
        assert {row[3] for row in ledger_rows(tmp_path)} == {"unconfirmed"}
        assert all(row[4] == 1 for row in ledger_rows(tmp_path))
        recorder.slow_reply = 0
        again = run_send(server, tmp_path, dist)
        assert again.exit_code == 0, again.output
    counts = received(recorder)
    assert set(counts.values()) == {2}  # each sent again once, by the rerun, flagged
    ids = {}
    for m in recorder.messages:
        ids.setdefault(
            m.message["To"].addresses[0].addr_spec + m.message["Content-Language"], set()
        ).add(m.message["Message-ID"])
    assert all(len(found) == 1 for found in ids.values())
    assert {(row[3], row[4]) for row in ledger_rows(tmp_path)} == {("sent", 1)}


def test_a_drop_before_the_reply_is_flagged_within_the_run(tmp_path, dist):
    subscribers_file(tmp_path, 6)  # 8 messages
    recorder = Recorder(drop_before_reply={3})
    with SMTPServer(recorder) as server:
        result = run_send(server, tmp_path, dist)
    assert result.exit_code == 1
    assert len(recorder.messages) == 8  # the third not retried after the drop
    (doubt,) = [row for row in ledger_rows(tmp_path) if row[4]]
    assert doubt[3] == "unconfirmed"
    assert result.stdout.strip().endswith("failed 0, in doubt 1")


# -- recipients --------------------------------------------------------------------------------


def test_a_refused_address_is_suppressed_for_every_later_send(tmp_path, dist):
    subscribers_file(tmp_path, 3)
    recorder = Recorder(refuse={"reader01@example.com": "550 5.1.1 No such user"})
    with SMTPServer(recorder) as server:
        first = run_send(server, tmp_path, dist)
        assert first.exit_code == 1
        assert "Failed: reader01@example.com (en): 550 5.1.1 No such user" in first.stderr
        recorder.refuse.clear()
        later = run_send(server, tmp_path, dist, digest="2024-10-29")
        assert later.exit_code == 0, later.output
        assert "skipped 1 (0 unsubscribed, 1 suppressed)" in later.stdout
        listed = CliRunner(env=env_for(server)).invoke(
            main, ["send", "--db", str(tmp_path / DB), "--suppressed"]
        )
        assert listed.stdout.startswith("reader01@example.com\t")
        assert "refused: 2024-11-07 (en): 550 5.1.1 No such user" in listed.stdout
        cleared = CliRunner(env=env_for(server)).invoke(
            main,
            [
                "send",
                "--db",
                str(tmp_path / DB),
                "--unsuppress",
                "reader01@example.com",
            ],
        )
        assert cleared.stdout == "Unsuppressed: reader01@example.com\n"
        last = run_send(server, tmp_path, dist, digest="2024-11-04-1")
        assert last.exit_code == 0
    sent_to = recorder.recipients()
    assert sent_to.count("reader01@example.com") == 1  # only after it was allowed again


def test_a_policy_refusal_fails_the_message_but_suppresses_no_one(tmp_path, dist):
    subscribers_file(tmp_path, 1)
    recorder = Recorder(refuse_data={"reader00@example.com": "554 5.7.1 Message rejected as spam"})
    with SMTPServer(recorder) as server:
        result = run_send(server, tmp_path, dist)
    assert result.exit_code == 1
    with sqlite3.connect(tmp_path / "subscribers.ledger.sqlite") as db:
        assert db.execute("SELECT count(*) FROM suppressions").fetchone() == (0,)


def test_idn_domains_go_as_idna_and_utf8_local_parts_need_smtputf8(tmp_path, dist):
    (tmp_path / "subscribers.csv").write_text(
        "email,lang\nuser@bücher.de,ko\njosé@example.com,ko\nlast@example.com,ko\n",
        encoding="utf-8",
    )
    plain = Recorder()
    with SMTPServer(plain, smtputf8=False) as server:
        result = run_send(server, tmp_path, dist)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert plain.recipients() == ["user@xn--bcher-kva.de", "last@example.com"]
    assert (
        "Failed: josé@example.com (ko): the address needs SMTPUTF8, which 127.0.0.1:"
        in result.stderr
    )
    capable = Recorder()
    with SMTPServer(capable, smtputf8=True) as server:
        again = run_send(server, tmp_path, dist)
    assert again.exit_code == 0, again.output
    (m,) = capable.messages
    assert m.rcpt_tos == ("josé@example.com",) and "SMTPUTF8" in m.options
    assert m.raw_header("To") == "To: josé@example.com".encode()


# -- lists ---------------------------------------------------------------------------------------


def test_a_missing_unsubscribed_file_sends_nothing(tmp_path, dist):
    subscribers_file(tmp_path, 3)
    missing = tmp_path / "unsubscribed.txt"
    with SMTPServer(Recorder()) as server:
        result = run_send(server, tmp_path, dist, "--unsubscribed", str(missing))
        assert result.exit_code == 1 and server.recorder.messages == []
    assert errors(result) == [
        f"Error: {missing}: cannot read the unsubscribed addresses (No such file or directory): "
        "nothing was sent"
    ]


def test_every_unsubscribed_line_is_an_address_or_an_error(tmp_path, dist):
    subscribers_file(tmp_path, 6)
    listed = tmp_path / "unsubscribed.txt"
    listed.write_text(
        "# people who left\n\nREADER00@example.com\nReader Five <reader05@example.com>\n"
        'reader01@example.com # left in May\n"reader02@example.com"\n'
    )
    with SMTPServer(Recorder()) as server:
        bad = run_send(server, tmp_path, dist, "--unsubscribed", str(listed))
        assert bad.exit_code == 1 and server.recorder.messages == []
        assert errors(bad) == [
            f'Error: {listed}:5: expected an address, "Name <address>" or a # comment, '
            'found "reader01@example.com # left in May"',
            f'Error: {listed}:6: expected an address, "Name <address>" or a # comment, '
            'found ""reader02@example.com""',
        ]
        listed.write_text(
            "# people who left\nREADER00@example.com\nReader Five <reader05@example.com>\n"
        )
        good = run_send(server, tmp_path, dist, "--unsubscribed", str(listed))
        assert good.exit_code == 0, good.output
        sent_to = set(server.recorder.recipients())
    assert "reader00@example.com" not in sent_to and "reader05@example.com" not in sent_to
    assert "skipped 2 (2 unsubscribed, 0 suppressed)" in good.stdout


# -- refusals and runs at once ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        (
            {"FEEDS_UNSUBSCRIBE_URL": "", "FEEDS_UNSUBSCRIBE_MAILTO": ""},
            "Error: nothing was sent: newsletters have no unsubscribe link or List-Unsubscribe "
            "header: set subscriptions_url (with FEEDS_SECRET_KEY) or unsubscribe_mailto",
        ),
        (
            {"FEEDS_AUTHOR_EMAIL": "feeds@localhost"},
            "Error: nothing was sent: newsletters would come from feeds@localhost: set "
            "author_email to the address they are sent from",
        ),
    ],
)
def test_poor_mail_is_refused_before_anything_is_sent(tmp_path, dist, unset, message):
    subscribers_file(tmp_path, 2)
    with SMTPServer(Recorder()) as server:
        env = {k: v for k, v in env_for(server).items() if k not in unset or unset[k]}
        env |= {k: v for k, v in unset.items() if v}
        result = run_send(server, tmp_path, dist, env=env)
        assert result.exit_code == 1 and server.recorder.messages == []
    assert errors(result) == [message]


def test_a_second_run_refuses_at_once_and_a_killed_one_leaves_no_lock(tmp_path, dist):
    subscribers_file(tmp_path)
    recorder = Recorder(stall_at=3)
    with SMTPServer(recorder) as server:
        first = send_process(server, tmp_path, dist)
        assert recorder.in_data.wait(60)
        started = time.monotonic()
        second = run_send(server, tmp_path, dist)
        assert time.monotonic() - started < 5
        assert second.exit_code == 1
        ledger = tmp_path / "subscribers.ledger.sqlite"
        assert errors(second) == [
            f"Error: the send ledger {ledger} is in use by another process "
            f"(pid {first.pid}: feeds send 2024-11-07)"
        ]
        first.send_signal(signal.SIGKILL)
        first.wait()
        recorder.release.set()
        third = run_send(server, tmp_path, dist)
        assert third.exit_code == 0, third.output
    counts = received(recorder)
    assert set(counts) == set(expected_messages())
    assert sum(counts.values()) - len(counts) == 1  # the one in flight when it was killed
