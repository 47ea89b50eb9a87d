"""Odd and hostile input, as a user meets it through the command line: the right result or one
clear `Error:`/`Warning:` line, never a traceback, never a silent misread."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest

from .conftest import SEEDS

ENV = {
    **os.environ,
    "FEEDS_BASE_URL": "https://example.org/",
    "FEEDS_CACHE_DIR": "cache",
    "FEEDS_AUTHOR_EMAIL": "notes@example.org",
    "FEEDS_UNSUBSCRIBE_MAILTO": "leave@example.org",
}

HEADER = "2024년 11월 7일\n"
NOTE = """LASER: Attention with Exponential Transformation
(Sai Surya Duvvuri, Inderjit S. Dhillon)
Transformers have had tremendous impact for several sequence related tasks.
Attention 확률이 대부분 0에 가깝기 때문에 발생하는 그래디언트의 감소를 해소.
This method addresses the issue of gradient reduction.
#transformer
"""


def feeds(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess[str]:
    """`feeds ARGS` run in cwd as a user runs it (never with a traceback)."""
    kw.setdefault("timeout", 120)
    kw.setdefault("env", ENV)
    result = subprocess.run(
        [sys.executable, "-m", "feeds", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        **kw,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def digests(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    folder = tmp_path / "digests"
    folder.mkdir(exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


def lines(result: subprocess.CompletedProcess[str], label: str) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith(label)]


# -- 1. RSS readers take <description> as HTML --------------------------------------------------


@pytest.mark.slow
def test_the_rss_summary_of_a_hostile_note_is_text_not_markup(tmp_path):
    hostile = NOTE.replace(
        "Attention 확률이", "<script>alert(1)</script> <eos> 토큰 뒤의 Attention 확률이"
    ).replace("This method", "<script>alert(1)</script> <eos> This method")
    src = digests(tmp_path, {"2024-11-07.txt": HEADER + hostile})
    assert feeds("build", str(src), "--out", "dist", cwd=tmp_path).returncode == 0
    for lang in ("ko", "en"):
        rss = feedparser.parse((tmp_path / "dist" / lang / "rss.xml").read_bytes())
        summary = rss.entries[0].summary_detail
        assert summary.type == "text/html"
        assert "<script" not in summary.value and "&lt;script&gt;" in summary.value
        assert "&lt;eos&gt;" in summary.value  # shown, not swallowed as a tag
    raw = (tmp_path / "dist" / "ko" / "rss.xml").read_text()
    assert "<description>&lt;script&gt;" not in raw  # escaped twice: HTML, then XML
    assert "<description>&amp;lt;script&amp;gt;alert(1)" in raw


# -- 2-4. notes the parser used to misread --------------------------------------------------------


def check_json(tmp_path: Path, text: str) -> tuple[dict, subprocess.CompletedProcess[str]]:
    import json

    src = digests(tmp_path, {"d.txt": text})
    result = feeds("check", str(src), "--json", cwd=tmp_path)
    return json.loads(result.stdout), result


def test_a_parenthesised_sentence_in_commentary_stays_commentary(tmp_path):
    note = NOTE.replace(
        "This method addresses",
        "See the results below.\n(See the appendix for details.)\nThis method addresses",
    )
    document, result = check_json(tmp_path, HEADER + note)
    assert result.returncode == 0 and lines(result, "Warning") == []
    (parsed,) = document["digests"][0]["notes"]
    assert parsed["title"].startswith("LASER") and parsed["tags"] == ["transformer"]
    assert parsed["commentary"]["en"] == [
        "See the results below.",
        "(See the appendix for details.)",
        "This method addresses the issue of gradient reduction.",
    ]


def test_a_note_merged_on_a_guess_is_named_with_both_lines(tmp_path):
    untagged = NOTE.replace("#transformer\n", "")
    second = "Number Cookbook\nLarge language models can solve reasoning tasks.\n9.11 > 9.9 같은 숫자 문제.\n#llm\n"
    _, result = check_json(tmp_path, HEADER + untagged + second)
    (merge,) = [w for w in lines(result, "Warning") if "Number Cookbook" in w]
    assert merge.endswith(
        ':7: line 7 "Number Cookbook" has no Hangul but sits in the Korean commentary '
        '(lines 5–9) of the note "LASER: Attention with Exponential Transformation" (line 2): '
        "if another note starts there, end this one with a tags line or give that one an "
        "authors line"
    )


def test_author_markers_are_dropped(tmp_path):
    note = NOTE.replace(
        "(Sai Surya Duvvuri, Inderjit S. Dhillon)", "(Shuyang Sun*, Yi Wang†‡, Ana Li¹²)"
    )
    document, result = check_json(tmp_path, HEADER + note)
    assert result.returncode == 0 and lines(result, "Warning") == []
    assert document["digests"][0]["notes"][0]["authors"] == ["Shuyang Sun", "Yi Wang", "Ana Li"]


def test_a_rejected_authors_line_says_why(tmp_path):
    note = NOTE.replace(
        "(Sai Surya Duvvuri, Inderjit S. Dhillon)", "(Sai Surya Duvvuri, J0hn Smith)"
    )
    _, result = check_json(tmp_path, HEADER + note)
    (warning,) = lines(result, "Warning")
    assert warning.endswith(
        'found "(Sai Surya Duvvuri, J0hn Smith)": the name "J0hn Smith" holds a digit'
    )


# -- 5. a stray line before the first note, and --keep-going ------------------------------------


@pytest.mark.slow
def test_a_line_before_the_first_note_names_its_note_and_keep_going_publishes_the_rest(tmp_path):
    src = digests(
        tmp_path,
        {
            "2024-11-06.txt": "2024년 11월 6일\n" + NOTE,
            "2024-11-07.txt": HEADER + "이 논문은 좋다.\n" + NOTE,
        },
    )
    failed = feeds("build", str(src), "--out", "dist", cwd=tmp_path)
    bad = src / "2024-11-07.txt"
    assert failed.returncode == 1 and not (tmp_path / "dist").exists()
    assert lines(failed, "Error") == [
        f'Error: {bad}:2: "이 논문은 좋다." cannot be placed in a note: expected a title line '
        'followed by an authors line "(Name, Name, …)", the abstract, the commentary and a tags '
        'line; it would belong to the note "LASER: Attention with Exponential Transformation" '
        "(line 3)"
    ]
    kept = feeds("build", str(src), "--out", "dist", "--keep-going", cwd=tmp_path)
    assert kept.returncode == 1
    assert kept.stderr.splitlines()[-2:] == ["Left out 1 digest files with errors:", f"  {bad}"]
    assert (tmp_path / "dist" / "ko" / "2024-11-06" / "index.html").is_file()
    assert not (tmp_path / "dist" / "ko" / "2024-11-07").exists()
    again = feeds("build", str(src), "--out", "dist", "--keep-going", cwd=tmp_path)
    assert again.returncode == 1 and "Left out 1 digest files" in again.stderr  # still said


# -- 6. what a file's errors hid, and files that are not text ---------------------------------


def test_a_file_with_errors_shows_its_warnings_too(tmp_path):
    text = "2024년 2월 30일\n" + NOTE.replace("(Sai Surya Duvvuri, Inderjit S. Dhillon)\n", "")
    src = digests(tmp_path, {"d.txt": text})
    result = feeds("check", str(src), cwd=tmp_path)
    assert result.returncode == 1
    assert len(lines(result, "Error")) == 1 and len(lines(result, "Warning")) == 1


def test_a_file_with_carriage_returns_only_parses(tmp_path):
    src = digests(tmp_path, {"d.txt": (HEADER + NOTE).replace("\n", "\r")})
    result = feeds("check", str(src), cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("1 digests, 1 notes, 1 tags")


def test_a_long_bad_line_is_quoted_in_short(tmp_path):
    src = digests(tmp_path, {"d.txt": "x" * 10_000 + "\n" + NOTE})
    result = feeds("check", str(src), cwd=tmp_path)
    (error,) = lines(result, "Error")
    assert len(error) < 250 and "xxx…" in error


def test_a_file_of_nul_bytes_is_called_binary_not_empty(tmp_path):
    src = digests(tmp_path, {"d.txt": b"\0" * 64})
    result = feeds("check", str(src), cwd=tmp_path)
    assert lines(result, "Error") == [
        f"Error: {src / 'd.txt'}:1: expected text, found a NUL byte at byte offset 0 (is it a "
        "binary file?)"
    ]


# -- 7-10. inputs check passed and build choked on -------------------------------------------------


@pytest.mark.slow
def test_a_very_long_tag_gets_a_bounded_path(tmp_path):
    tag = "가" * 90  # 270 bytes: more than a file name may hold
    src = digests(tmp_path, {"d.txt": HEADER + NOTE.replace("#transformer", f"#{tag} #short")})
    result = feeds("build", str(src), "--out", "dist", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folders = [p for p in (tmp_path / "dist" / "ko" / "tags").iterdir() if p.is_dir()]
    assert len(folders) == 2 and all(len(p.name.encode()) <= 120 for p in folders)
    assert feeds("build", str(src), "--out", "dist", cwd=tmp_path).stdout.startswith(
        "Built dist: 0 written"
    )


@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.parametrize(
    ("tag", "why"),
    [
        ("#_", "it has no letter or digit"),
        ("#-", "it has no letter or digit"),
        ("#İstanbul", 'its folded form "i̇stanbul" holds characters a path cannot'),
    ],
)
def test_a_tag_with_no_path_is_an_error_at_its_line(tmp_path, tag, why):
    src = digests(tmp_path, {"d.txt": HEADER + NOTE.replace("#transformer", tag)})
    for command in ("check", "build"):
        result = feeds(command, str(src), cwd=tmp_path)
        assert result.returncode == 1
        assert lines(result, "Error") == [
            f'Error: {src / "d.txt"}:7: the tag "{tag}" cannot name a tag page or feed: {why}'
        ]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "9999년 12월 31일 (30)",
            'expected a year from 1900 to 2999, found 9999 in "9999년 12월 31일 (30)"',
        ),
        (
            "2024년 11월 7일 (1000)",
            'expected a part number from 1 to 23, found 1000 in "2024년 11월 7일 (1000)"',
        ),
        (
            "2024년 11월 7일 (99999999999999999999)",
            'expected a part number from 1 to 23, found 99999999999… in "2024년 11월 7일 (99999999999999999999)"',
        ),
    ],
)
def test_dates_and_parts_out_of_range_are_errors(tmp_path, header, message):
    src = digests(tmp_path, {"d.txt": f"{header}\n{NOTE}"})
    result = feeds("build", str(src), cwd=tmp_path)
    assert lines(result, "Error") == [f"Error: {src / 'd.txt'}:1: {message}"]


@pytest.mark.slow
def test_a_note_with_ten_thousand_tags_is_refused(tmp_path):
    tags = " ".join(f"#t{n}" for n in range(10_000))
    src = digests(tmp_path, {"d.txt": HEADER + NOTE.replace("#transformer", tags)})
    result = feeds("build", str(src), cwd=tmp_path)
    assert lines(result, "Error") == [
        f"Error: {src / 'd.txt'}:7: expected at most 50 tags on a note, found 10000"
    ]


@pytest.mark.slow
def test_twenty_thousand_notes_with_one_title_get_distinct_anchors(tmp_path):
    import json

    src = digests(tmp_path, {"d.txt": HEADER + NOTE * 20_000})
    result = feeds("check", str(src), "--json", cwd=tmp_path, timeout=60)
    slugs = [n["slug"] for n in json.loads(result.stdout)["digests"][0]["notes"]]
    base = "laser-attention-with-exponential-transformation"
    assert slugs == [base] + [f"{base}-{n}" for n in range(2, 20_001)]


# -- 11-17. the file system and the preview server ---------------------------------------------------


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


@pytest.mark.slow
def test_a_disk_that_takes_no_more_is_one_error_and_dist_stays(tmp_path):
    src = tmp_path / "seeds"
    subprocess.run(["cp", "-r", str(SEEDS), str(src)], check=True)
    assert feeds("build", str(src), "--out", "dist", cwd=tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "dist").rglob("*") if p.is_file()}
    (src / "2024-11-07.txt").write_text(
        (src / "2024-11-07.txt").read_text(encoding="utf-8").replace("#", "#more-", 1)
    )
    result = feeds("build", str(src), "--out", "dist", cwd=tmp_path, preexec_fn=_limit_file_size)
    assert result.returncode == 1
    (error,) = lines(result, "Error")
    assert "the build stopped, dist is as it was: File too large" in error
    assert {p: p.read_bytes() for p in (tmp_path / "dist").rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_dist_as_a_link_is_built_through_it(tmp_path):
    src = tmp_path / "seeds"
    subprocess.run(["cp", "-r", str(SEEDS), str(src)], check=True)
    (tmp_path / "www").mkdir()
    (tmp_path / "dist").symlink_to("www")
    for _ in range(3):
        assert feeds("build", str(src), "--out", "dist", cwd=tmp_path).returncode == 0
        assert (tmp_path / "dist").is_symlink() and (tmp_path / "www" / "ko" / "atom.xml").is_file()
    (src / "2024-11-07.txt").write_text(
        (src / "2024-11-07.txt").read_text(encoding="utf-8").replace("#", "#more-", 1)
    )
    assert feeds("build", str(src), "--out", "dist", cwd=tmp_path).returncode == 0
    assert (tmp_path / "dist").is_symlink()
    assert "more-" in (tmp_path / "www" / "ko" / "2024-11-07" / "index.html").read_text()


@pytest.mark.slow
def test_what_a_killed_state_write_left_is_removed(tmp_path):
    src = tmp_path / "seeds"
    subprocess.run(["cp", "-r", str(SEEDS), str(src)], check=True)
    stale = src / "..feeds-state.json.tmp-999999999"
    stale.write_text("{half")
    assert feeds("build", str(src), "--out", "dist", cwd=tmp_path).returncode == 0
    assert not stale.exists()


def test_folders_named_like_digests_links_to_nothing_and_days_twice_are_said(tmp_path):
    src = digests(
        tmp_path,
        {
            "2024-11-07.txt": HEADER + NOTE,
            "2024-11-07-1.TXT": "2024년 11월 7일 (1)\n" + NOTE,
            "2099-01-01.txt": "2099년 1월 1일\n" + NOTE,
        },
    )
    (src / "folder.txt").mkdir()
    (src / "gone.txt").symlink_to("nowhere.txt")
    result = feeds("check", str(src), cwd=tmp_path)
    assert result.returncode == 0
    assert sorted(lines(result, "Warning")) == sorted(
        [
            f"Warning: {src / 'folder.txt'}: passed over: not a file, not a digest file",
            f"Warning: {src / 'gone.txt'}: passed over: a link to nothing, not a digest file",
            f"Warning: {src / '2099-01-01.txt'}:1: the digest is dated 2099-01-01, which is still to come",
            f"Warning: {src / '2024-11-07.txt'}:1: 2024-11-07 has an unnumbered digest and numbered "
            "parts (2024-11-07-1.TXT): number every part of a day that has several",
        ]
    )
    assert result.stdout.startswith("3 digests, 3 notes")  # the .TXT file is read too


def test_many_warnings_of_a_kind_are_counted_not_listed(tmp_path):
    untagged = NOTE.replace("#transformer\n", "")
    src = digests(
        tmp_path, {f"2024-10-{n:02d}.txt": f"2024년 10월 {n}일\n{untagged}" for n in range(1, 11)}
    )
    short = feeds("check", str(src), cwd=tmp_path)
    assert lines(short, "Warning")[-1] == (
        "Warning: … and 7 more notes without a tags line (--verbose lists every one)"
    )
    assert len(lines(short, "Warning")) == 4
    assert len(lines(feeds("check", str(src), "--verbose", cwd=tmp_path), "Warning")) == 10
    assert short.stdout.endswith("0 errors, 10 warnings\n")
