"""The newsletter: MJML-compiled HTML, plain text and a complete .eml for every digest and language."""

from __future__ import annotations

import email
import re
import shutil
from email import policy
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from feeds.archive import load_archive
from feeds.build import build
from feeds.cli import main
from feeds.config import Settings, make_settings
from feeds.corpus import _english, _korean

from .browser import needs_chromium, screenshot, scroll_width
from .conftest import ARTIFACTS, SEEDS

BASE = "https://example.org/"
UNSUB = "https://example.org/unsubscribe"


SUBJECTS = {
    ("2024-11-07", "ko"): "ML 논문 노트 · 2024년 11월 7일",
    ("2024-11-07", "en"): "ML Paper Notes · November 7, 2024",
    ("2024-11-04-1", "ko"): "ML 논문 노트 · 2024년 11월 4일 (1)",
    ("2024-11-04-1", "en"): "ML Paper Notes · November 4, 2024 (1)",
    ("2024-10-29", "ko"): "ML 논문 노트 · 2024년 10월 29일",
    ("2024-10-29", "en"): "ML Paper Notes · October 29, 2024",
}


def site(**kw) -> Settings:
    values = dict(
        base_url=BASE,
        author_name="Notes Editor",
        author_email="notes@example.org",
        unsubscribe_url=UNSUB,
        unsubscribe_mailto="leave@example.org",
    )
    values.update(kw)
    return make_settings(**values)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("nl")
    shutil.copytree(SEEDS, tmp / "seeds")
    build(tmp / "seeds", tmp / "dist", site())
    return tmp / "dist"


@pytest.fixture(scope="module")
def archive():
    return load_archive(SEEDS).archive


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(html: str) -> str:
    """The text a reader sees in an HTML document (entities decoded)."""
    parser = _Text()
    parser.feed(html)
    return "".join(parser.parts)


def squash(text: str) -> str:
    return " ".join(text.split())


def test_three_files_per_digest_and_language(dist):
    files = sorted(
        p.relative_to(dist).as_posix() for p in (dist / "newsletters").rglob("*") if p.is_file()
    )
    assert files == [
        f"newsletters/{d}/{lang}.{ext}"
        for d in ("2024-10-29", "2024-11-04-1", "2024-11-07")
        for lang in ("en", "ko")
        for ext in ("eml", "html", "txt")
    ]


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_eml_headers_and_parts(dist, archive, lang):
    for digest in archive.digests:
        raw = (dist / "newsletters" / digest.id / f"{lang}.eml").read_bytes()
        assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
        msg = email.message_from_bytes(raw, policy=policy.default)
        assert msg["From"] == "Notes Editor <notes@example.org>"
        assert msg["To"] == "undisclosed-recipients:;"
        assert msg["Subject"] == SUBJECTS[(digest.id, lang)]
        if lang == "ko":
            assert "=?utf-8?" in raw.decode("ascii").split("Subject:")[1].split("\r\n")[0]
        assert msg["Date"].datetime.isoformat().startswith(digest.date.isoformat())
        assert msg["Message-ID"] == f"<newsletter.{digest.id}.{lang}@example.org>"
        assert msg["List-Unsubscribe"] == (
            f"<mailto:leave@example.org?subject=unsubscribe>, <{UNSUB}?token=__RECIPIENT_TOKEN__>"
        )
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg.get_content_type() == "multipart/alternative"
        text_part, html_part = msg.get_payload()
        assert (
            text_part.get_content_type() == "text/plain"
            and html_part.get_content_type() == "text/html"
        )
        assert html_part["Content-Transfer-Encoding"] == "base64"
        assert html_part.get_content_charset() == "utf-8"
        html, text = html_part.get_content(), text_part.get_content()
        on_disk = (dist / "newsletters" / digest.id / f"{lang}.html").read_text()
        assert html.replace("\r\n", "\n").rstrip("\n") == on_disk.rstrip("\n")
        visible = squash(html_text(html))
        for note in digest.notes:
            assert note.title in visible
            assert squash(note.title) in squash(text)
            for paragraph in note.commentary(lang):
                assert paragraph in visible
                # the text part puts each URL on a line of its own: compare without the breaks
                assert "".join(paragraph.split()) in "".join(text.split())
            assert f"{BASE}{lang}/{digest.id}/#{note.slug}" in html


def test_html_content_rules(dist):
    html = (dist / "newsletters" / "2024-11-07" / "ko.html").read_text()
    assert html.count('<html lang="ko"') == 1
    assert "<title>ML 논문 노트 · 2024년 11월 7일</title>" in html
    preheader = re.search(r'<div style="display:none[^>]*>(.*?)</div>', html, re.S)
    assert preheader and preheader[1].strip().startswith("이번 호의 논문: How Transformers Solve")
    assert "word-break: keep-all" in re.search(r"<p style=\"[^\"]*\"[^>]*>트랜스포머", html)[0]
    assert "<script" not in html.lower()
    assert "fonts.googleapis" not in html and "@import" not in html
    assert not re.search(r"<link[^>]+stylesheet", html)
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert hrefs and all(h.startswith(("https://", "mailto:")) for h in hrefs)
    assert f'href="{BASE}ko/2024-11-07/"' in html  # view in browser
    assert f'href="{UNSUB}?token=__RECIPIENT_TOKEN__"' in html
    assert f'href="{BASE}ko/atom.xml"' in html
    assert all('alt="' in img for img in re.findall(r"<img[^>]*>", html))
    assert "Guan Zhe Hong, Nishanth Dikkala, Enming Luo\u00a0외" in html  # no break before 외
    assert "Large language models (LLMs) have shown" not in html  # the abstract stays on the web


def test_plain_text_is_wrapped_for_people(dist):
    text = (dist / "newsletters" / "2024-11-07" / "ko.txt").read_text()
    assert text.startswith("ML 논문 노트\n2024년 11월 7일\n")
    assert "<p" not in text and "</" not in text and "&amp;" not in text
    widths = [
        sum(2 if "\uac00" <= c <= "\ud7a3" else 1 for c in line)
        for line in text.splitlines()
        if "http" not in line
    ]
    assert max(widths) <= 72
    assert "   #llm #benchmark #reasoning" in text
    assert (
        f"Unsubscribe: {UNSUB}" not in text
        and f"구독 해지: {UNSUB}?token=__RECIPIENT_TOKEN__" in text
    )


def test_rebuild_gives_identical_newsletters(tmp_path, dist):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    build(tmp_path / "seeds", tmp_path / "dist", site())
    for path in (dist / "newsletters").rglob("*.*"):
        assert path.read_bytes() == (tmp_path / "dist" / path.relative_to(dist)).read_bytes()


def long_digest(notes: int, sentences: int) -> str:
    import random

    rng = random.Random(1)
    lines = ["2024년 11월 8일"]
    for n in range(notes):
        lines += [
            f"Paper number {n}: a long title about attention and scaling in large models",
            "(Ada Kim, Bo Lee, Chen Park, Daria Wang, Emil Zhang)",
            _english(rng, 10),
            _korean(rng, sentences),
            _korean(rng, sentences),
            _english(rng, sentences),
            _english(rng, sentences),
            "#transformer #scaling",
        ]
    return "\n".join(lines) + "\n"


def test_thirty_long_notes_stay_under_gmail_clip(tmp_path):
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "d.txt").write_text(long_digest(30, 6))
    report = build(tmp_path / "seeds", tmp_path / "dist", site())
    for lang in ("ko", "en"):
        size = (tmp_path / "dist" / "newsletters" / "2024-11-08" / f"{lang}.html").stat().st_size
        assert 40_000 < size < 102 * 1024, size
    assert not [w for w in report.warnings if "Gmail" in w.message]


def test_build_warns_when_a_newsletter_would_be_clipped(tmp_path):
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "d.txt").write_text(long_digest(40, 30))
    report = build(tmp_path / "seeds", tmp_path / "dist", site())
    messages = [str(w) for w in report.warnings]
    assert any(
        m.startswith(f"{tmp_path}/seeds/d.txt: the ko newsletter is ")
        and "Gmail clips messages over 102 KB" in m
        for m in messages
    )


def run_build_with_template(tmp_path: Path, name: str, content: str):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / name).write_text(content)
    shutil.copytree(SEEDS, tmp_path / "seeds")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "keep.txt").write_text("old")
    env = {"FEEDS_TEMPLATES_DIR": str(templates), "FEEDS_BASE_URL": BASE}
    result = CliRunner(env=env).invoke(
        main, ["build", str(tmp_path / "seeds"), "--out", str(tmp_path / "dist")]
    )
    assert result.exit_code == 1
    assert (tmp_path / "dist" / "keep.txt").read_text() == "old"
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def test_jinja_error_names_template_and_line(tmp_path):
    errors = run_build_with_template(
        tmp_path, "newsletter.txt", "{{ site_title }}\n{{ no_such_name }}\n"
    )
    assert errors == [
        f"Error: {tmp_path}/templates/newsletter.txt:2: template error: 'no_such_name' is undefined"
    ]


def test_jinja_syntax_error_names_template_and_line(tmp_path):
    errors = run_build_with_template(tmp_path, "newsletter.txt", "a\nb\n{% for x in %}\n")
    assert errors == [
        f"Error: {tmp_path}/templates/newsletter.txt:3: template syntax: Expected an expression, got 'end of statement block'"
    ]


def test_unknown_mj_tag_is_reported(tmp_path):
    source = (Path(__file__).parent.parent / "templates" / "newsletter.mjml").read_text()
    source = source.replace(
        "<mj-preview>", "<mj-html-attributes></mj-html-attributes>\n    <mj-preview>"
    )
    errors = run_build_with_template(tmp_path, "newsletter.mjml", source)
    line = source.splitlines().index("    <mj-html-attributes></mj-html-attributes>") + 1
    assert errors == [
        f"Error: {tmp_path}/templates/newsletter.mjml:{line}: unknown MJML tag <mj-html-attributes> (MRML would pass it through untouched)"
    ]


def test_invalid_mjml_is_reported(tmp_path):
    source = (Path(__file__).parent.parent / "templates" / "newsletter.mjml").read_text()
    errors = run_build_with_template(tmp_path, "newsletter.mjml", source.replace("</mj-head>", ""))
    assert len(errors) == 1
    assert errors[0].startswith(
        "Error: newsletter.mjml: invalid MJML in the output for 2024-11-07 (ko): mismatched tag"
    )


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("width", [375, 600])
def test_newsletters_do_not_scroll_sideways(dist, width):
    for page in sorted((dist / "newsletters").rglob("*.html")):
        scroll, client = scroll_width(page, width)
        assert client == width and scroll <= client, (page, scroll, client)
    page = dist / "newsletters" / "2024-11-07" / "ko.html"
    shot = screenshot(page, ARTIFACTS / f"newsletter-2024-11-07-ko-{width}.png", width, 2000)
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
@needs_chromium
def test_dark_mode_darkens_the_frame_and_the_footer_too(dist):
    """In a client that honours prefers-color-scheme (Apple Mail, iOS), no band stays white."""
    from .browser import Browser

    page = dist / "newsletters" / "2024-11-07" / "en.html"
    with Browser(width=390) as browser:
        browser.call(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": "dark"}],
        )
        browser.open(page.as_uri())
        found = browser.js(
            "[getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.querySelector('.frame')).backgroundColor,"
            " getComputedStyle(document.querySelector('.foot')).backgroundColor,"
            " getComputedStyle(document.querySelector('.card')).backgroundColor,"
            " getComputedStyle(document.querySelector('.foot p')).color]"
        )
        browser.screenshot(ARTIFACTS / "newsletter-2024-11-07-en-390-dark.png")
    body, frame, foot, card, foot_text = found  # type: ignore[misc]
    assert body == frame == foot == "rgb(15, 17, 20)", found
    assert card == "rgb(28, 31, 36)", found
    assert foot_text == "rgb(160, 167, 176)", found
