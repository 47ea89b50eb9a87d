"""The static web archive: pages, links, HTML validity, atomic and incremental writes, serve."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from xml.etree import ElementTree

import pytest

from feeds.build import build
from feeds.config import Settings, make_settings
from feeds.corpus import generate

from .browser import needs_chromium, screenshot, scroll_width
from .conftest import ARTIFACTS, ROOT, SEEDS

BASE = "https://example.org/notes/"
DIGESTS = ("2024-11-07", "2024-11-04-1", "2024-10-29")


def site(**kw) -> Settings:
    return make_settings(base_url=BASE, unsubscribe_url="https://example.org/unsub", **kw)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("site")
    shutil.copytree(SEEDS, tmp / "seeds")
    build(tmp / "seeds", tmp / "dist", site())
    return tmp / "dist"


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_page_exists(dist):
    expected = ["index.html", "404.html", "sitemap.xml", "robots.txt"]
    for lang in ("ko", "en"):
        expected += [f"{lang}/index.html", f"{lang}/tags/index.html", f"{lang}/search/index.html"]
        expected += [f"{lang}/{d}/index.html" for d in DIGESTS]
        expected += [
            f"{lang}/tags/{t.name}/index.html"
            for t in (dist / lang / "tags").iterdir()
            if t.is_dir()
        ]
    for path in expected:
        assert (dist / path).is_file(), path
    assert (
        len([p for p in dist.rglob("*.html") if "newsletters" not in p.parts]) == len(expected) - 2
    )


def test_digest_page_has_anchors_abstract_and_alternates(dist):
    html = (dist / "ko" / "2024-10-29" / "index.html").read_text()
    assert '<html lang="ko">' in html
    assert '<h2 id="thunderkittens-simple-fast-and-adorable-ai-kernels" lang="en">' in html
    assert html.count("<details data-pagefind-ignore>") == 10  # abstracts: not searched
    assert f'<link rel="canonical" href="{BASE}ko/2024-10-29/">' in html
    assert f'<link rel="alternate" hreflang="en" href="{BASE}en/2024-10-29/">' in html
    assert (
        f'<link rel="alternate" type="application/atom+xml" title="ML 논문 노트 (Atom)" href="{BASE}ko/atom.xml">'
        in html
    )
    assert f'href="{BASE}en/2024-10-29/" hreflang="en" lang="en">English</a>' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "<script" not in html


def test_a_retitled_note_keeps_its_anchor_and_gains_its_new_titles_unless_taken(tmp_path):
    """A note keeps the slug it was published with; its new title's slug leads to it too,
    unless another note of the page has that anchor. No id repeats on the page."""
    src = tmp_path / "seeds"
    shutil.copytree(SEEDS, src, ignore=shutil.ignore_patterns(".feeds-state.json"))
    build(src, tmp_path / "dist", site())
    digest = src / "2024-10-29.txt"
    text = digest.read_text(encoding="utf-8")
    matching = "Generator Matching: Generative modeling with arbitrary Markov processes"
    kittens = "ThunderKittens: Simple, Fast, and Adorable AI Kernels"
    mardini = "MarDini: Masked Autoregressive Diffusion for Video Generation at Scale"
    text = text.replace(matching, "Generator Matching, Retitled").replace(kittens, mardini)
    digest.write_text(text, encoding="utf-8")
    build(src, tmp_path / "dist", site())
    for lang in ("ko", "en"):
        html = (tmp_path / "dist" / lang / "2024-10-29" / "index.html").read_text()
        ids = re.findall(r'\sid="([^"]+)"', html)
        assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
        for kept in (
            "generator-matching-generative-modeling-with-arbitrary-markov-processes",
            "thunderkittens-simple-fast-and-adorable-ai-kernels",
            "mardini-masked-autoregressive-diffusion-for-video-generation-at-scale",
        ):
            assert f'<h2 id="{kept}" lang="en">' in html
        assert '<span id="generator-matching-retitled"></span>' in html
        # ThunderKittens' new title is MarDini's, whose note holds that anchor: no alias.
        assert html.count("<span id=") == 1


def test_tag_page_lists_tag_feeds_newest_first(dist):
    html = (dist / "en" / "tags" / "diffusion" / "index.html").read_text()
    assert (
        f'type="application/atom+xml" title="ML Paper Notes · #diffusion (Atom)" href="{BASE}en/tags/diffusion/atom.xml"'
        in html
    )
    links = re.findall(r'<li><a lang="en" href="([^"]+)">([^<]+)</a>', html)
    assert {url.split("#")[0] for url, _ in links} == {f"{BASE}en/2024-10-29/"}
    titles = [title for _, title in links]
    assert titles == [
        "MarDini: Masked Autoregressive Diffusion for Video Generation at Scale",
        "Generator Matching: Generative modeling with arbitrary Markov processes",
        "On Inductive Biases That Enable Generalization of Diffusion Transformers",
    ]


def test_archive_groups_by_month_newest_first(dist):
    html = (dist / "en" / "index.html").read_text()
    assert html.index("<h2>November 2024</h2>") < html.index("<h2>October 2024</h2>")
    assert html.index("November 7, 2024") < html.index("November 4, 2024 (1)")


def _links(path: Path, data: str) -> list[str]:
    if path.suffix in (".html", ".eml", ".txt"):
        return re.findall(r'(?:href|src)="([^"]+)"', data) + re.findall(
            r"https?://[^\s\"'<>)]+", data if path.suffix == ".txt" else ""
        )
    if path.name == "feed.json":
        import json

        doc = json.loads(data)
        return [
            doc["home_page_url"],
            doc["feed_url"],
            *(i["url"] for i in doc["items"]),
            *re.findall(r'href=\\?"([^"\\]+)', data),
        ]
    root = ElementTree.fromstring(data.encode())
    found = []
    for el in root.iter():
        for attr in ("href", "xmlUrl", "htmlUrl"):
            if el.get(attr):
                found.append(el.get(attr))
        if (
            el.tag.split("}")[-1] in ("link", "loc", "guid", "id")
            and el.text
            and el.text.startswith("http")
        ):
            found.append(el.text)
        if el.text and "href=" in el.text:
            found += re.findall(r'href="([^"]+)"', el.text)
    return found


def test_every_link_resolves(dist):
    """Every link in every page, feed, newsletter, OPML and sitemap lands on a file in dist/."""
    import email
    from email import policy

    checked = 0
    for path in sorted(dist.rglob("*")):
        if not path.is_file() or path.name == "robots.txt" or path.suffix in (".png", ".ico"):
            continue
        if path.relative_to(dist).parts[0] == "pagefind":  # Pagefind's own files
            continue
        if path.suffix == ".eml":
            msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            data = "\n".join(part.get_content() for part in msg.get_payload())
        else:
            data = path.read_text(encoding="utf-8")
        for link in _links(path, data):
            if link.startswith(BASE):
                target = link.split("#")[0][len(BASE) :]
                target = urllib.request.url2pathname(target)
                target = target + "index.html" if target == "" or target.endswith("/") else target
                assert (dist / target).is_file(), (
                    f"{path.relative_to(dist)} links to missing {link}"
                )
                if "#" in link and target.endswith("index.html"):
                    fragment = urllib.parse.unquote(link.split("#", 1)[1])
                    assert f'id="{fragment}"' in (dist / target).read_text(), link
                checked += 1
            else:
                assert link.startswith(("https://", "http://", "mailto:")), (path, link)
    assert checked > 2000


def test_sitemap_and_robots(dist):
    sitemap = ElementTree.parse(dist / "sitemap.xml").getroot()
    locs = [e.text for e in sitemap.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert f"{BASE}ko/2024-11-07/" in locs and f"{BASE}404.html" not in locs
    assert (dist / "robots.txt").read_text().endswith(f"Sitemap: {BASE}sitemap.xml\n")


VNU = Path(
    os.environ.get(
        "VNU_JAR", ROOT / ".tools" / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
    )
)


@pytest.mark.skipif(
    not VNU.is_file() or not shutil.which("java"),
    reason="vnu.jar (npm vnu-jar) or java missing; .ci/run installs it",
)
@pytest.mark.slow
def test_pages_pass_the_nu_html_checker(dist, tmp_path):
    pages = sorted(str(p) for p in dist.rglob("*.html") if "newsletters" not in p.parts)
    result = subprocess.run(
        ["java", "-jar", str(VNU), "--errors-only", *pages], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr[:3000]
    broken = tmp_path / "broken.html"
    broken.write_text("<!doctype html><html lang=en><title>x</title><p><div></span>")
    result = subprocess.run(
        ["java", "-jar", str(VNU), "--errors-only", str(broken)], capture_output=True, text=True
    )
    assert result.returncode != 0 and "error" in result.stderr  # the checker does check


def test_no_change_rebuild_keeps_every_file(tmp_path):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    build(tmp_path / "seeds", tmp_path / "dist", site())
    before = {
        p: (p.stat().st_mtime_ns, p.stat().st_ino)
        for p in (tmp_path / "dist").rglob("*")
        if p.is_file()
    }
    time.sleep(0.05)
    report = build(tmp_path / "seeds", tmp_path / "dist", site())
    assert report.written == [] and report.removed == [] and report.unchanged == len(before)
    after = {
        p: (p.stat().st_mtime_ns, p.stat().st_ino)
        for p in (tmp_path / "dist").rglob("*")
        if p.is_file()
    }
    assert after == before


def test_adding_a_digest_rewrites_only_what_changed(tmp_path):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    build(tmp_path / "seeds", tmp_path / "dist", site())
    (tmp_path / "dist" / "stray.html").write_text("left over")
    old = tree(tmp_path / "dist")
    mtimes = {p: (tmp_path / "dist" / p).stat().st_mtime_ns for p in old}
    new = (SEEDS / "2024-11-07.txt").read_text().replace("2024년 11월 7일", "2024년 11월 9일")
    (tmp_path / "seeds" / "2024-11-09.txt").write_text(new)
    report = build(tmp_path / "seeds", tmp_path / "dist", site())
    now = tree(tmp_path / "dist")
    # Pagefind's index files are named by their content: the changed ones go, new ones come
    assert [p for p in report.removed if not p.startswith("pagefind/")] == ["stray.html"]
    assert "stray.html" not in now
    assert "ko/2024-11-09/index.html" in report.written
    assert "ko/2024-10-29/index.html" not in report.written  # untouched digest page
    for path in old:
        if path in now and now[path] == old[path]:
            assert (tmp_path / "dist" / path).stat().st_mtime_ns == mtimes[path], path
    assert set(report.written) == {p for p in now if old.get(p) != now[p]}


def test_a_failing_build_leaves_dist_as_it_was(tmp_path):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    build(tmp_path / "seeds", tmp_path / "dist", site())
    old = tree(tmp_path / "dist")
    (tmp_path / "seeds" / "bad.txt").write_text("2024년 2월 30일\nTitle\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "feeds",
            "build",
            str(tmp_path / "seeds"),
            "--out",
            str(tmp_path / "dist"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "FEEDS_BASE_URL": BASE},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"Error: {tmp_path}/seeds/bad.txt:1:" in result.stderr
    assert tree(tmp_path / "dist") == old


@pytest.mark.slow
def test_killed_build_never_leaves_a_mixed_dist(tmp_path):
    """Kill a build at many points: dist/ is always wholly the old site or wholly the new one."""
    env = {**os.environ, "FEEDS_BASE_URL": BASE}

    def feeds_build(src: Path, out: Path) -> list[str]:
        return [sys.executable, "-m", "feeds", "build", str(src), "--out", str(out)]

    old_src, new_src = tmp_path / "old-seeds", tmp_path / "new-seeds"
    generate(old_src, 60, seed=5)
    shutil.copytree(old_src, new_src)
    first = sorted(new_src.glob("*.txt"))[0].read_text(encoding="utf-8-sig")
    (new_src / "2030-01-01.txt").write_text(
        re.sub(r"^\S+년 \S+월 \S+일", "2030년 1월 1일", first.lstrip())
    )
    subprocess.run(feeds_build(old_src, tmp_path / "old"), check=True, capture_output=True, env=env)
    subprocess.run(feeds_build(new_src, tmp_path / "new"), check=True, capture_output=True, env=env)
    old, new = tree(tmp_path / "old"), tree(tmp_path / "new")
    assert old != new

    dist = tmp_path / "dist"
    shutil.copytree(tmp_path / "old", dist)
    start = time.perf_counter()
    subprocess.run(feeds_build(new_src, dist), check=True, capture_output=True, env=env)
    duration = time.perf_counter() - start
    outcomes = []
    for fraction in (0.2, 0.5, 0.75, 0.9, 0.97):
        shutil.rmtree(dist)
        shutil.copytree(tmp_path / "old", dist)
        process = subprocess.Popen(
            feeds_build(new_src, dist),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(duration * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait()
        now = tree(dist)
        assert now in (old, new), f"mixed dist/ after a kill at {fraction:.0%}"
        outcomes.append("old" if now == old else "new")
        subprocess.run(feeds_build(new_src, dist), check=True, capture_output=True, env=env)
        assert tree(dist) == new
        leftovers = {p.name for p in tmp_path.glob(".dist.*")}
        assert leftovers <= {".dist.spare", ".dist.lock"}, (
            f"a staging folder was left behind: {leftovers}"
        )
    assert "old" in outcomes, outcomes  # at least one kill landed before the swap


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("width", [375, 1280])
def test_pages_fit_phone_and_desktop(dist, width):
    pages = {
        "home": dist / "index.html",
        "digest": dist / "ko" / "2024-10-29" / "index.html",
        "tag": dist / "en" / "tags" / "diffusion" / "index.html",
    }
    for name, page in pages.items():
        scroll, client = scroll_width(page, width)
        assert client == width and scroll <= client, (name, scroll, client)
        shot = screenshot(page, ARTIFACTS / f"page-{name}-{width}.png", width, 1400)
        assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_tag_with_many_notes_moves_older_ones_to_pages_that_never_change(tmp_path):
    from feeds.archive import read_archive
    from feeds.model import tag_key

    src, out, size = tmp_path / "src", tmp_path / "dist", 5
    generate(src, 30, seed=3)
    archive = read_archive(src).archive
    counts: dict[str, int] = {}
    for digest in archive.digests:
        for note in digest.notes:
            for tag in note.tags:
                counts[tag_key(tag)] = counts.get(tag_key(tag), 0) + 1
    tag = max(counts, key=lambda t: counts[t])
    assert counts[tag] >= 4 * size  # several older pages
    expected = [
        f"{BASE}en/{d.id}/#{n.slug}"
        for d in archive.digests
        for n in d.notes
        if tag in {tag_key(t) for t in n.tags}
    ]
    build(src, out, site(tag_page_size=size))

    def walk(start: str, rel: str) -> list[tuple[str, list[str]]]:
        pages, url = [], start
        while url:
            target = urllib.request.url2pathname(url[len(BASE) :])
            html = (out / (target + "index.html" if target.endswith("/") else target)).read_text()
            pages.append((url, re.findall(r'<li><a lang="en" href="([^"]+)">', html)))
            found = re.search(rf'href="([^"]+)" rel="{rel}"', html)
            url = found[1] if found else ""
        return pages

    main = f"{BASE}en/tags/{urllib.parse.quote(tag)}/"
    older = walk(main, "prev")
    listed = [link for _, links in older for link in links]
    assert listed == expected  # every note once, newest first, across main and older pages
    assert size <= len(older[0][1]) < 2 * size
    assert all(len(links) == size for _, links in older[1:])
    assert [url for url, _ in walk(older[-1][0], "next")] == [url for url, _ in reversed(older)]
    sitemap = (out / "sitemap.xml").read_text()
    assert all(f"<loc>{url}</loc>" in sitemap for url, _ in older)

    numbered = sorted((out / "en" / "tags" / tag).glob("[0-9]*.html"), key=lambda p: int(p.stem))
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in numbered}
    newest = max(src.glob("*.txt")).read_text(encoding="utf-8")
    for day in range(1, size + 2):  # enough new notes with the tag for one more older page
        text = re.sub(r"^\d+년 \d+월 \d+일", f"2100년 1월 {day}일", newest)
        text = re.sub(r"(?m)^#.*$", lambda m: f"{m[0]} #{tag}", text)
        (src / f"2100-01-{day:02}.txt").write_text(text, encoding="utf-8")
    build(src, out, site(tag_page_size=size))
    after = sorted((out / "en" / "tags" / tag).glob("[0-9]*.html"))
    assert len(after) > len(numbered)
    changed = [
        name
        for name, (data, mtime) in before.items()
        if (out / "en" / "tags" / tag / name).read_bytes() != data
        or (out / "en" / "tags" / tag / name).stat().st_mtime_ns != mtime
    ]
    assert changed == [numbered[-1].name]  # only its "newer" link moved to the new page


@pytest.mark.slow
@pytest.mark.skipif(
    not VNU.is_file() or not shutil.which("java"),
    reason="vnu.jar (npm vnu-jar) or java missing; .ci/run installs it",
)
def test_english_pages_of_korean_only_notes_say_their_language(tmp_path):
    """The Nu checker warns when a page marked lang="en" reads as Korean: the Korean
    commentary of notes that have no English one is marked lang="ko"."""
    import random

    rng = random.Random(3)
    words = [
        "모델",
        "학습",
        "어텐션",
        "레이어",
        "토큰",
        "스케일링",
        "데이터",
        "손실",
        "추론",
        "언어",
        "트랜스포머",
        "확산",
    ]
    lines = ["2024년 11월 9일"]
    for n in range(10):
        lines += [f"Paper Title Number {n}", "(Ada Kim, Bo Lee)", "An abstract in English."]
        lines += [" ".join(rng.choice(words) for _ in range(40)) + " 결과입니다.", "#scaling"]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "2024-11-09.txt").write_text("\n".join(lines) + "\n")
    build(tmp_path / "src", tmp_path / "dist", site())
    page = tmp_path / "dist" / "en" / "2024-11-09" / "index.html"
    result = subprocess.run(["java", "-jar", str(VNU), str(page)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
