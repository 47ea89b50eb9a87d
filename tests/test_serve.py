"""`feeds serve`: content types, 404, rebuild on change, and the last good site kept on a failure."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import SEEDS

pytestmark = pytest.mark.slow  # feeds serve as a process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.fixture
def server(tmp_path: Path):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feeds",
            "serve",
            str(tmp_path / "seeds"),
            "--out",
            str(tmp_path / "dist"),
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: get(base)[0] == 200)
        yield base, tmp_path
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_serves_feeds_with_their_media_types(server):
    base, _ = server
    assert get(base + "ko/atom.xml")[1] == "application/atom+xml"
    assert get(base + "ko/rss.xml")[1] == "application/rss+xml"
    assert get(base + "en/tags/moe/feed.json")[1] == "application/feed+json"
    assert get(base + "feeds.opml")[1] == "text/x-opml"
    status, kind, body = get(base + "ko/2024-11-07/")
    assert (
        status == 200
        and kind.startswith("text/html")
        and f'href="{base}ko/atom.xml"'.encode() in body
    )
    status, _, body = get(base + "no/such/page")
    assert status == 404 and b"<h1>" in body


def test_rebuilds_on_change_and_keeps_last_good_site(server):
    base, tmp = server
    new = (SEEDS / "2024-11-07.txt").read_text().replace("2024년 11월 7일", "2024년 11월 8일")
    (tmp / "seeds" / "2024-11-08.txt").write_text(new)
    wait_for(lambda: get(base + "en/2024-11-08/")[0] == 200)
    (tmp / "seeds" / "broken.txt").write_text("not a date\n")
    wait_for(lambda: "Rebuild failed" in (tmp / "serve.log").read_text())
    log = (tmp / "serve.log").read_text()
    assert f"Error: {tmp}/seeds/broken.txt:1: expected a date header" in log
    assert get(base + "en/2024-11-08/")[0] == 200


def test_odd_requests_get_a_page_not_a_traceback_or_a_listing(server):
    base, tmp = server
    assert get(base + "%00")[0] == 404
    assert get(base + "a%00b/c")[0] == 404
    status, _, body = get(base + "newsletters/")
    assert status == 404 and b"Index of" not in body
    log = (tmp / "serve.log").read_text()
    assert "Traceback" not in log


def test_a_port_in_use_or_out_of_range_is_one_error(tmp_path):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "feeds", "serve", str(tmp_path / "seeds"), "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"Error: cannot serve on 127.0.0.1:{port}: Address already in use"
    ]
    assert not (tmp_path / "dist").exists()  # said before anything was built
    wide = subprocess.run(
        [sys.executable, "-m", "feeds", "serve", str(tmp_path / "seeds"), "--port", "99999"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wide.returncode == 2 and "99999 is not in the range 1<=x<=65535" in wide.stderr
