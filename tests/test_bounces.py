"""`feeds subscribers bounces` on delivery status notifications and abuse reports as Postfix,
Exim, Gmail, Microsoft and Yahoo write them (tests/bounces/), in a Maildir and in an mbox:
exactly the hard bounces and complainers are suppressed, soft bounces counted to a limit,
and everything else left alone."""

from __future__ import annotations

import mailbox
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from feeds.cli import main
from feeds.tokens import Tokens

from .sending import SECRET

SAMPLES = Path(__file__).parent / "bounces"
PEOPLE = [
    "gone@example.com",  # Postfix, VERP
    "exim-gone@example.net",  # Exim, by X-Failed-Recipients
    "gmail-gone@gmail.com",  # Gmail DSN
    "ms-gone@outlook.com",  # Microsoft NDR
    "slow@example.com",  # three delayed DSNs: soft
    "complainer@yahoo.com",  # ARF, VERP
    "second-complainer@example.com",  # ARF, Original-Rcpt-To
    "away@example.com",  # out of office: not a bounce
    "reader@example.com",  # a reply: not a bounce
    "fine@example.com",  # nothing came back
]


def cli(db: Path, *args: str) -> tuple[int, str]:
    env = {
        "FEEDS_BASE_URL": "https://example.org/",
        "FEEDS_SECRET_KEY": SECRET,
        "FEEDS_BOUNCE_ADDRESS": "bounces@example.org",
    }
    result = CliRunner(env=env).invoke(main, ["subscribers", *args, "--db", str(db)])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def subscribed(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    listed = tmp_path / "list.csv"
    listed.write_text("email,lang\n" + "".join(f"{p},ko\n" for p in PEOPLE))
    db = tmp_path / "subscribers.sqlite"
    assert cli(db, "import", "--confirmed", str(listed))[0] == 0
    with sqlite3.connect(db) as conn:
        ids = dict(conn.execute("SELECT email, id FROM subscribers"))
    return db, ids


def messages(ids: dict[str, str], names: list[str] | None = None) -> list[bytes]:
    tokens = Tokens(SECRET)
    found = []
    for path in sorted(SAMPLES.glob("*.eml")):
        if names is None or path.stem in names:
            text = re.sub(
                r"\{tag:([^}]+)\}", lambda m: tokens.bounce_tag(ids[m[1]]), path.read_text()
            )
            found.append(text.replace("\n", "\r\n").encode())
    return found


def in_maildir(tmp_path: Path, raw: list[bytes]) -> Path:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for message in raw:
        box.add(message)
    box.close()
    return tmp_path / "Maildir"


def in_mbox(tmp_path: Path, raw: list[bytes]) -> Path:
    box = mailbox.mbox(tmp_path / "bounces.mbox", create=True)
    for message in raw:
        box.add(message)
    box.close()
    return tmp_path / "bounces.mbox"


def statuses(db: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT email, status, soft_bounces FROM subscribers").fetchall()
    return {email: (status, soft) for email, status, soft in rows}


@pytest.mark.parametrize("store", [in_maildir, in_mbox])
def test_exactly_the_hard_bounces_and_complainers_are_suppressed(tmp_path, store):
    db, ids = subscribed(tmp_path)
    box = store(tmp_path, messages(ids))
    code, out = cli(db, "bounces", str(box))
    assert code == 0, out
    assert sorted(out.splitlines()[:-1]) == sorted(
        [
            "Complaint: complainer@yahoo.com: suppressed",
            "Complaint: second-complainer@example.com: suppressed",
            "Hard bounce: exim-gone@example.net: suppressed",
            "Hard bounce: gmail-gone@gmail.com: suppressed",
            "Hard bounce: gone@example.com: suppressed",
            "Hard bounce: ms-gone@outlook.com: suppressed",
            "Soft bounce: slow@example.com: counted",
            "Soft bounce: slow@example.com: counted",
            "Soft bounce: slow@example.com: suppressed",
        ]
    )
    assert out.splitlines()[-1] == (
        "4 hard bounces, 3 soft bounces, 2 complaints; 0 seen before; 2 not recognised (left alone)"
    )
    assert statuses(db) == {
        "gone@example.com": ("bounced", 0),
        "exim-gone@example.net": ("bounced", 0),
        "gmail-gone@gmail.com": ("bounced", 0),
        "ms-gone@outlook.com": ("bounced", 0),
        "slow@example.com": ("bounced", 3),
        "complainer@yahoo.com": ("complained", 0),
        "second-complainer@example.com": ("complained", 0),
        "away@example.com": ("confirmed", 0),
        "reader@example.com": ("confirmed", 0),
        "fine@example.com": ("confirmed", 0),
    }
    # Each report counts once: a second run over the same mailbox changes nothing.
    code, again = cli(db, "bounces", str(box))
    assert again.splitlines() == [
        "0 hard bounces, 0 soft bounces, 0 complaints; 9 seen before; 2 not recognised (left alone)"
    ]
    # and a suppressed address does not come back by signing up or being imported again
    listed = tmp_path / "again.csv"
    listed.write_text("email,lang\ngone@example.com,ko\n")
    assert "Imported 0 subscribers" in cli(db, "import", "--confirmed", str(listed))[1]


def test_soft_bounces_below_the_limit_only_count(tmp_path):
    db, ids = subscribed(tmp_path)
    box = in_maildir(tmp_path, messages(ids, ["delayed-1", "delayed-2"]))
    code, out = cli(db, "bounces", str(box))
    assert code == 0
    assert out.splitlines()[:2] == ["Soft bounce: slow@example.com: counted"] * 2
    assert statuses(db)["slow@example.com"] == ("confirmed", 2)


def test_a_bounce_whose_verp_tag_was_forged_is_matched_by_address_or_not_at_all(tmp_path):
    db, ids = subscribed(tmp_path)
    forged = messages(ids, ["postfix-hard"])[0]
    forged = re.sub(
        rb"bounces\+[0-9a-f]+-[0-9a-f]+@",
        b"bounces+" + ids["fine@example.com"].encode() + b"-000000000000@",
        forged,
    )
    code, out = cli(db, "bounces", str(in_maildir(tmp_path, [forged])))
    assert code == 0
    assert out.splitlines()[0] == "Hard bounce: gone@example.com: suppressed"
    assert statuses(db)["fine@example.com"] == ("confirmed", 0)


def test_a_mailbox_that_is_not_one_is_an_error(tmp_path):
    db, _ = subscribed(tmp_path)
    (tmp_path / "folder").mkdir()
    code, out = cli(db, "bounces", str(tmp_path / "folder"))
    assert code == 1
    assert (
        out
        == f"Error: {tmp_path / 'folder'}: expected a Maildir (with cur/ and new/) or an mbox file\n"
    )
    code, out = cli(db, "bounces")
    assert code == 1 and out.startswith("Error: expected a MAILDIR or MBOX, or --imap URL")
    code, out = cli(db, "bounces", "--imap", "imaps://user@127.0.0.1:9/INBOX")
    assert code == 1 and "FEEDS_IMAP_PASSWORD" in out
