"""The `feeds` command as a process: it ends without the interpreter's clean-up (feeds.cli.run),
so what it prints and the status it exits with are checked from outside."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


ENV = {
    **os.environ,
    "FEEDS_BASE_URL": "https://example.org/",
    "FEEDS_CACHE_DIR": "cache",
    "FEEDS_AUTHOR_EMAIL": "notes@example.org",
    "FEEDS_UNSUBSCRIBE_MAILTO": "leave@example.org",
}


def feeds(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = ENV
    return subprocess.run(
        [sys.executable, "-m", "feeds", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def seeds(tmp_path: Path) -> str:
    """A copy of the seeds (a build writes the note state beside them)."""
    shutil.copytree(SEEDS, tmp_path / "seeds")
    return str(tmp_path / "seeds")


def test_a_build_prints_its_summary_and_exits_0(tmp_path):
    result = feeds("build", seeds(tmp_path), "--out", "dist", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Built dist: 260 written, 0 unchanged, 0 removed in ")
    assert result.stdout.endswith(")\n") and result.stderr == ""
    assert (tmp_path / "dist" / "ko" / "atom.xml").is_file()


def test_every_problem_is_printed_and_the_status_is_1(tmp_path):
    src = tmp_path / "digests"
    src.mkdir()
    (src / "2024-11-07.txt").write_text("2024년 11월 7일\n", encoding="utf-8")
    (src / "2024-11-08.txt").write_text("2024년 2월 30일\nTitle\n", encoding="utf-8")
    result = feeds("check", str(src), cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert [e.split(":")[1:3] for e in errors] == [
        [f" {src / '2024-11-07.txt'}", "1"],
        [f" {src / '2024-11-08.txt'}", "1"],
        [f" {src / '2024-11-08.txt'}", "2"],
    ]
    assert result.stdout == "0 digests, 0 notes, 0 tags; 3 errors, 0 warnings\n"
    assert not [line for line in result.stderr.splitlines() if line.startswith("Warning")]
    assert "Traceback" not in result.stderr


def test_a_usage_error_exits_2(tmp_path):
    result = feeds("no-such-command", cwd=tmp_path)
    assert result.returncode == 2
    assert "No such command 'no-such-command'" in result.stderr


LAZY = """
import sys
from feeds.cli import main
try:
    main(["build", sys.argv[1], "--out", "dist"])
except SystemExit:
    pass
print(" ".join(sorted(m for m in ("feedgen", "mjml", "lxml", "feeds.jobs", "feeds.renderer") if m in sys.modules)))
"""


def test_a_no_change_build_imports_no_renderer(tmp_path):
    """The no-change path reads the inputs and stops: feedgen, MRML and lxml stay unloaded."""
    src = seeds(tmp_path)
    assert feeds("build", src, "--out", "dist", cwd=tmp_path).returncode == 0
    again = subprocess.run(
        [sys.executable, "-c", LAZY, src],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert "Built dist: 0 written, 260 unchanged" in again.stdout
    assert again.stdout.splitlines()[-1] == ""  # none of them was imported


def test_a_build_warns_once_about_newsletters_not_fit_to_send(tmp_path):
    env = {
        k: v for k, v in ENV.items() if k not in ("FEEDS_AUTHOR_EMAIL", "FEEDS_UNSUBSCRIBE_MAILTO")
    }
    result = subprocess.run(
        [sys.executable, "-m", "feeds", "build", seeds(tmp_path), "--out", "dist"],
        cwd=tmp_path,  # no pyproject.toml here: no unsubscribe target, From feeds@localhost
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "Warning: newsletters have no unsubscribe link or List-Unsubscribe header: set "
        "subscriptions_url (with FEEDS_SECRET_KEY) or unsubscribe_mailto",
        "Warning: newsletters would come from feeds@localhost: set author_email to the address "
        "they are sent from",
    ]


def test_the_watcher_outlives_a_rebuild_that_crashes(tmp_path):
    """feeds serve's watcher: a rebuild failing in a way nobody foresaw is told, and the
    watching goes on (it used to end the thread silently, and no edit was built again)."""
    import threading

    from feeds.serve import watch

    (tmp_path / "a.txt").write_text("one")
    calls, crashes, stop = [], [], threading.Event()

    def rebuild() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("unforeseen")

    watcher = threading.Thread(
        target=watch, args=([tmp_path], rebuild, stop, crashes.append, 0.05), daemon=True
    )
    watcher.start()
    for text in ("two", "three-three"):
        time.sleep(0.3)
        (tmp_path / "a.txt").write_text(text)
        os.utime(tmp_path / "a.txt", (time.time() + len(text), time.time() + len(text)))
    deadline = time.monotonic() + 10
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    watcher.join(5)
    assert len(calls) >= 2 and [str(e) for e in crashes] == ["unforeseen"]
