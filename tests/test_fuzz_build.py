"""Whole builds of generated, often hostile, archives: a build gives a site or a FeedsError,
never another exception. FEEDS_FUZZ_EXAMPLES sets how many archives (default 40)."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from feeds.build import build
from feeds.config import make_settings
from feeds.errors import FeedsError

LINES = st.sampled_from(
    [
        "2024년 11월 7일",
        "2024년 11월 7일 (2)",
        "2024년 2월 30일",
        "9999년 12월 31일 (23)",
        "1900년 1월 1일",
        "Title of a Paper",
        "Another: Title With a Colon?",
        "(Ada Kim, Bo Lee)",
        "(Shuyang Sun*, Yi Wang†)",
        "(See the appendix for details.)",
        "(x)",
        "An abstract in English about attention.",
        "한국어 코멘트입니다.",
        "Mixed 한국어 and English (https://example.org/a_(b)).",
        "English commentary follows the Korean.",
        "#tag #another-tag",
        "#İstanbul",
        "#_",
        "#" + "가" * 90,
        "#a #A #ä",
        "<script>alert(1)</script>",
        "]]> &amp; \x1b \u202e \ufffe 😀",
        "",
        "   ",
        "x" * 500,
    ]
)
HEADERS = st.tuples(
    st.dates(date(2000, 1, 1), date(2026, 1, 1)), st.sampled_from(["", " (1)", " (2)"])
).map(lambda t: f"{t[0].year}년 {t[0].month}월 {t[0].day}일{t[1]}")
BODY = st.sampled_from(
    [
        "An abstract in English about attention.",
        "한국어 코멘트입니다.",
        "Mixed 한국어 and English (https://example.org/a_(b)).",
        "(See the appendix for details.)",
        "<script>alert(1)</script> &amp; ]]>",
        "\x1b \u202e \ufffe 😀 \u2028 \x85",
        "x" * 500,
        "",
    ]
)
NOTE = st.tuples(
    st.sampled_from(["Title of a Paper", "Another: Title?", "<b>Bold</b> & Title", "Title"]),
    st.sampled_from(["(Ada Kim, Bo Lee)", "(Shuyang Sun*, Yi Wang†)", "(x)", ""]),
    st.lists(BODY, max_size=4),
    st.sampled_from(["#tag #another-tag", "#a #A", "#한국어", "", "#" + "가" * 90]),
).map(lambda t: "\n".join([t[0], t[1], *t[2], "한국어 코멘트입니다.", t[3]]))
DIGEST = st.tuples(HEADERS, st.lists(NOTE, min_size=1, max_size=4)).map(
    lambda t: "\n".join([t[0], *t[1]]) + "\n"
)
TEXT = st.one_of(
    DIGEST,
    DIGEST,
    st.lists(LINES, max_size=25).map("\n".join),
    st.text(max_size=200),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
)
NAMES = st.sampled_from(["a.txt", "b.txt", "2024-11-07.txt", "C.TXT", ".hidden.txt", "d.md"])
EXAMPLES = int(os.environ.get("FEEDS_FUZZ_EXAMPLES", "40"))


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    files=st.dictionaries(NAMES, TEXT, min_size=1, max_size=4),
    encoding=st.sampled_from(["utf-8", "utf-8-sig"]),
)
def test_a_build_gives_a_site_or_a_feeds_error(files, encoding):
    work = Path(tempfile.mkdtemp(prefix="feeds-fuzz-"))
    try:
        src = work / "src"
        src.mkdir()
        for name, text in files.items():
            (src / name).write_bytes(text.encode(encoding, "surrogatepass"))
        site = make_settings(
            base_url="https://example.org/", cache_dir=str(work / "cache"), workers=1
        )
        for _ in range(2):  # and again, through the caches
            try:
                report = build(src, work / "dist", site)
                event("built")
            except FeedsError as exc:
                event("refused")
                assert exc.problems and all(str(p) for p in exc.problems)
                assert not (work / "dist").exists() or any((work / "dist").iterdir())
            else:
                assert (work / "dist" / "index.html").is_file() and report.unchanged >= 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
