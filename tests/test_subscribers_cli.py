"""`feeds subscribers import|export|list|forget`: exact output, as sqlite-utils tests its CLI."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from feeds.cli import main

from .sending import SECRET

WHEN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {"FEEDS_BASE_URL": "https://example.org/", "FEEDS_SECRET_KEY": SECRET}
    result = CliRunner(env=env).invoke(
        main, ["subscribers", *args, "--db", str(tmp_path / "subs.sqlite")]
    )
    assert "Traceback" not in result.output
    return result.exit_code, WHEN.sub("T", result.stdout), WHEN.sub("T", result.stderr)


def csv_file(tmp_path: Path, *rows: str, header: str = "email,lang,name") -> str:
    path = tmp_path / "list.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return str(path)


def test_import_takes_every_row_or_none_and_names_each_bad_line(tmp_path):
    listed = csv_file(tmp_path, "a@example.com,ko,A", "nobody,ko,", "b@example.com,fr,B")
    assert run(tmp_path, "import", listed) == (
        1,
        "",
        f'Error: {listed}:3: expected an email address, found "nobody": An email address must have '
        "an @-sign.\n"
        f'Error: {listed}:4: expected the language ko, en or both, found "fr"\n',
    )
    assert run(tmp_path, "list") == (0, "0 subscribers, 0 confirmed\n", "")


def test_import_then_list_export_and_json(tmp_path):
    listed = csv_file(tmp_path, "a@example.com,ko,A", "B@Example.COM,both,B")
    assert run(tmp_path, "import", listed) == (
        0,
        "Imported 2 subscribers (unconfirmed: mailed only once they confirm); "
        "0 known already or suppressed.\n",
        "",
    )
    assert run(tmp_path, "import", "--confirmed", listed)[1] == (
        "Imported 0 subscribers (confirmed); 2 known already or suppressed.\n"
    )
    other = csv_file(tmp_path, "c@example.com,en,C")
    assert run(tmp_path, "import", "--confirmed", other)[1] == (
        "Imported 1 subscriber (confirmed); 0 known already or suppressed.\n"
    )
    assert run(tmp_path, "list") == (
        0,
        "a@example.com\tko\tpending\tT\n"
        "B@example.com\tboth\tpending\tT\n"
        "c@example.com\ten\tconfirmed\tT\n"
        "3 subscribers, 1 confirmed\n",
        "",
    )
    code, out, _ = run(tmp_path, "list", "--json")
    assert code == 0
    objects = json.loads(out)
    assert [o["email"] for o in objects] == ["a@example.com", "B@example.com", "c@example.com"]
    assert objects[2] == {
        "email": "c@example.com",
        "lang": "en",
        "status": "confirmed",
        "subscribed_at": "T",
        "confirmed_at": "T",
        "left_at": None,
    }
    assert len(out.strip().splitlines()) == 3  # one object a line
    assert run(tmp_path, "export") == (
        0,
        "email,lang,status,subscribed_at,confirmed_at,left_at\n"
        "a@example.com,ko,pending,T,,\n"
        "B@example.com,both,pending,T,,\n"
        "c@example.com,en,confirmed,T,T,\n",
        "",
    )


def test_an_exported_list_imported_elsewhere_keeps_who_left_left(tmp_path):
    header = "email,lang,status,subscribed_at,confirmed_at,left_at"
    exported = csv_file(
        tmp_path,
        "stays@example.com,ko,confirmed,,,",
        "left@example.com,ko,unsubscribed,,,",
        "bounced@example.com,en,bounced,,,",
        header=header,
    )
    assert run(tmp_path, "import", "--confirmed", exported)[0] == 0
    out = run(tmp_path, "list")[1]
    assert "stays@example.com\tko\tconfirmed" in out
    assert "left@example.com\tko\tunsubscribed" in out
    assert "bounced@example.com\ten\tbounced" in out
    bad = csv_file(tmp_path, "x@example.com,ko,gone,,,", header=header)
    assert run(tmp_path, "import", bad)[2] == (
        f"Error: {bad}:2: expected a status (pending, confirmed, listed, unsubscribed, bounced, "
        'complained), found "gone"\n'
    )


def test_forget_erases_the_person_and_keeps_them_from_coming_back(tmp_path):
    listed = csv_file(tmp_path, "a@example.com,ko,A", "b@example.com,en,B")
    run(tmp_path, "import", "--confirmed", listed)
    assert run(tmp_path, "forget", "A@example.com", "nobody@example.com") == (
        0,
        "Forgot: A@example.com\nNot a subscriber; never to be mailed: nobody@example.com\n",
        "",
    )
    with sqlite3.connect(tmp_path / "subs.sqlite") as db:
        dump = "\n".join(db.iterdump())
    assert "a@example.com" not in dump.casefold()
    assert run(tmp_path, "import", "--confirmed", listed)[1] == (
        "Imported 0 subscribers (confirmed); 2 known already or suppressed.\n"
    )
    assert (
        run(tmp_path, "list")[1] == "b@example.com\ten\tconfirmed\tT\n1 subscriber, 1 confirmed\n"
    )
    assert run(tmp_path, "forget", "not an address")[0] != 0
