"""What a reader's tools see besides the notes: the feeds with one item per digest, the icons,
the link previews (og:, description), and the search index (Pagefind) with its failures."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest

from feeds.archive import load_archive
from feeds.build import build

from .conftest import SEEDS
from .test_feeds import BASE, build_seeds, read_feed, site
from .test_hostile import feeds

DIGEST_FEEDS = ("atom.xml", "rss.xml", "feed.json")


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    return build_seeds(tmp_path_factory.mktemp("identity"))


@pytest.fixture(scope="module")
def archive():
    return load_archive(SEEDS).archive


# -- one item per digest ---------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["ko", "en"])
@pytest.mark.parametrize("fmt", DIGEST_FEEDS)
def test_digest_feed_has_one_item_per_digest_with_the_whole_digest(dist, archive, lang, fmt):
    parsed = read_feed(dist / lang / "digests" / fmt)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert [e.id for e in parsed.entries] == [f"{BASE}{lang}/{d.id}/" for d in archive.digests]
    assert [e.link for e in parsed.entries] == [e.id for e in parsed.entries]
    for entry, digest in zip(parsed.entries, archive.digests, strict=True):
        html = entry.content[0].value
        text = _text(html)
        for note in digest.notes:  # every note, its commentary in the language and its link
            assert note.title in text, note.title
            assert note.commentary_for(lang)[0] in text, note.title
            assert f'href="{BASE}{lang}/{digest.id}/#{note.slug}"' in html
        assert "<mj-" not in html and "<table" not in html  # web HTML, not the email markup
    # Dated like the digest: its first note's time in the language feed.
    notes = read_feed(dist / lang / fmt)
    newest_note = next(e for e in notes.entries if e.link.startswith(parsed.entries[0].id))
    assert parsed.entries[0].published_parsed == newest_note.published_parsed


def _text(html: str) -> str:
    """What a reader shows of some HTML: its text, entities decoded, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", "", html)).split())


def test_digest_feeds_are_listed_in_the_opml_and_autodiscovered(dist):
    opml = ElementTree.parse(dist / "feeds.opml").getroot()
    listed = {o.get("xmlUrl") for o in opml.iter("outline")}
    for lang in ("ko", "en"):
        assert f"{BASE}{lang}/digests/atom.xml" in listed
        archive_page = (dist / lang / "index.html").read_text()
        for fmt in DIGEST_FEEDS:
            assert f'href="{BASE}{lang}/digests/{fmt}"' in archive_page
    landing = (dist / "index.html").read_text()
    alternates = re.findall(r'<link rel="alternate" type="([^"]+)"[^>]* href="([^"]+)"', landing)
    assert {url for _, url in alternates} >= {
        f"{BASE}{lang}/digests/{fmt}" for lang in ("ko", "en") for fmt in DIGEST_FEEDS
    }


def test_digest_feed_keeps_the_newest_digest_feed_limit(tmp_path):
    dist = build_seeds(tmp_path, digest_feed_limit=2)
    assert len(read_feed(dist / "en" / "digests" / "atom.xml").entries) == 2


# -- icons and previews ----------------------------------------------------------------------


class _Head(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, list[str]] = {}
        self.icons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        key = found.get("property") or found.get("name")
        if tag == "meta" and key:
            self.meta.setdefault(key, []).append(found.get("content") or "")
        if tag == "link" and found.get("rel") in ("icon", "apple-touch-icon"):
            self.icons.append(found.get("href") or "")


def _head(path: Path) -> _Head:
    parser = _Head()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _in_dist(dist: Path, url: str) -> Path:
    assert url.startswith(BASE), url
    path = url.removeprefix(BASE).split("#")[0]
    return dist / (path + "index.html" if path == "" or path.endswith("/") else path)


def test_every_page_has_previews_and_icons_that_resolve(dist):
    pages = [p for p in dist.rglob("*.html") if "newsletters" not in p.parts]
    assert len(pages) > 50
    for page in pages:
        head = _head(page)
        for key in ("og:title", "og:description", "og:url", "og:type", "og:locale"):
            assert head.meta.get(key, [""])[0].strip(), (page, key)
        assert head.meta["description"][0].strip(), page
        assert head.meta["og:locale:alternate"][0] in ("ko_KR", "en_US"), page
        for key in ("og:url", "og:image"):
            assert _in_dist(dist, head.meta[key][0]).is_file(), (page, key, head.meta[key])
        assert {_in_dist(dist, icon).name for icon in head.icons} == {
            "favicon.ico",
            "favicon.svg",
            "icon-512.png",
        }, page


def test_a_digest_page_is_described_by_its_own_content(dist, archive):
    digest = archive.digests[-1]
    head = _head(dist / "en" / digest.id / "index.html")
    description = head.meta["description"][0]
    assert description.startswith("Digest of October 29, 2024, 10 notes: "), description
    assert digest.notes[0].title[:40] in description and len(description) <= 200
    assert head.meta["og:type"] == ["article"]
    assert head.meta["og:locale"] == ["en_US"] and head.meta["og:locale:alternate"] == ["ko_KR"]
    home = _head(dist / "index.html").meta["description"][0]
    assert home != description and "November 7, 2024" in home


def test_icons_are_real_images_and_the_feeds_name_them(dist):
    ico = (dist / "favicon.ico").read_bytes()
    assert ico[:4] == b"\0\0\1\0" and int.from_bytes(ico[4:6], "little") == 3  # 16, 32, 48 px
    assert (dist / "icon-512.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (dist / "favicon.svg").read_bytes()
    atom = ElementTree.parse(dist / "en" / "atom.xml").getroot()
    ns = {"a": "http://www.w3.org/2005/Atom"}
    for tag in ("icon", "logo"):
        assert _in_dist(dist, atom.find(f"a:{tag}", ns).text).is_file()
    image = ElementTree.parse(dist / "en" / "digests" / "rss.xml").getroot().find("channel/image")
    assert _in_dist(dist, image.find("url").text).is_file()
    assert image.find("link").text == f"{BASE}en/"
    feed = json.loads((dist / "ko" / "feed.json").read_text())
    assert _in_dist(dist, feed["icon"]).is_file() and _in_dist(dist, feed["favicon"]).is_file()


def test_an_icon_in_the_templates_folder_replaces_the_shipped_one(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    shutil.copytree(SEEDS, tmp_path / "seeds")
    settings = site(templates_dir=str(templates), cache_dir=str(tmp_path / "cache"))
    build(tmp_path / "seeds", tmp_path / "dist", settings)
    assert (tmp_path / "dist" / "favicon.svg").read_text() == (
        templates / "favicon.svg"
    ).read_text()


# -- search ----------------------------------------------------------------------------------


def test_the_search_index_is_per_language_and_byte_identical_across_builds(tmp_path):
    first = build_seeds(tmp_path, "one")
    second = build_seeds(tmp_path, "two")
    files = sorted(p.relative_to(first) for p in (first / "pagefind").rglob("*") if p.is_file())
    assert files == sorted(
        p.relative_to(second) for p in (second / "pagefind").rglob("*") if p.is_file()
    )
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    entry = json.loads((first / "pagefind" / "1" / "pagefind-entry.json").read_text())
    assert list(entry["languages"]) == ["en", "ko"]
    assert {lang: v["page_count"] for lang, v in entry["languages"].items()} == {"en": 3, "ko": 3}


def test_a_new_digest_reindexes_only_the_newest_search_shard(tmp_path):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    settings = site(
        search_shard_size=2, cache_dir=str(tmp_path / "cache")
    )  # 3 digests: shard 1 (the oldest 2) is full
    first = build(tmp_path / "seeds", tmp_path / "dist", settings)
    assert first.search_indexed == 2
    new = (SEEDS / "2024-11-07.txt").read_text().replace("2024년 11월 7일", "2024년 11월 9일")
    (tmp_path / "seeds" / "2024-11-09.txt").write_text(new)
    second = build(tmp_path / "seeds", tmp_path / "dist", settings)
    assert second.search_indexed == 1
    assert not [p for p in second.written + second.removed if p.startswith("pagefind/1/")]
    assert [p for p in second.written if p.startswith("pagefind/2/")]
    search = (tmp_path / "dist" / "en" / "search" / "index.html").read_text()
    assert f'bundlePath: "{BASE}pagefind/2/"' in search
    assert f'["{BASE}pagefind/1/"]' in search  # the older shard, merged in


def _fake_pagefind(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "pagefind"
    script.write_text(
        f'#!/bin/sh\ncase "$1" in --version) echo pagefind 1.5.2; exit 0;; esac\n{body}\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "said"),
    [
        (None, "the search index needs Pagefind's binary, which was not found"),
        (
            "echo 'Error: out of memory' >&2; exit 3",
            "Pagefind failed writing the search index: Error: out of memory",
        ),
        ("kill -9 $$", "Pagefind killed by signal 9 writing the search index"),
    ],
    ids=["missing", "fails", "killed"],
)
def test_a_pagefind_failure_is_one_error_and_dist_stays_as_it_was(tmp_path, body, said):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "keep.txt").write_text("old")
    binary = tmp_path / "missing" if body is None else _fake_pagefind(tmp_path, body)
    env = {**os.environ, "PAGEFIND_BINARY_PATH": str(binary), "FEEDS_BASE_URL": BASE}
    env["FEEDS_CACHE_DIR"] = str(tmp_path / "cache")
    result = feeds("build", "seeds", "--out", "dist", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and said in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["keep.txt"]
    # With the binary back, the same cache builds the site.
    del env["PAGEFIND_BINARY_PATH"]
    again = feeds("build", "seeds", "--out", "dist", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "dist" / "pagefind" / "1" / "pagefind-entry.json").is_file()


def test_files_that_share_their_bytes_do_not_defeat_the_no_change_build(tmp_path):
    """Each search shard has the same scripts: one inode, whose ctime every link changes."""
    shutil.copytree(SEEDS, tmp_path / "seeds")
    settings = site(search_shard_size=1, cache_dir=str(tmp_path / "cache"))
    build(tmp_path / "seeds", tmp_path / "dist", settings)
    assert (tmp_path / "dist" / "pagefind" / "3" / "pagefind.js").read_bytes() == (
        tmp_path / "dist" / "pagefind" / "1" / "pagefind.js"
    ).read_bytes()
    again = build(tmp_path / "seeds", tmp_path / "dist", settings)
    assert again.written == [] and list(again.timings) == ["parse"], again.timings


@pytest.mark.slow
def test_a_search_shard_removed_does_not_defeat_the_next_no_change_build(tmp_path):
    """The removed shard's scripts shared their inode with the kept shards' scripts: removing
    them changed the ctime of those too, after the build had recorded it."""
    shutil.copytree(SEEDS, tmp_path / "seeds")
    settings = site(search_shard_size=1, cache_dir=str(tmp_path / "cache"))
    new = (SEEDS / "2024-11-07.txt").read_text().replace("2024년 11월 7일", "2024년 11월 9일")
    (tmp_path / "seeds" / "2024-11-09.txt").write_text(new)
    build(tmp_path / "seeds", tmp_path / "dist", settings)  # 4 shards
    (tmp_path / "seeds" / "2024-11-09.txt").write_text(new.replace("#", "#edited-", 1))
    build(tmp_path / "seeds", tmp_path / "dist", settings)  # the first tree is kept as spare
    (tmp_path / "seeds" / "2024-11-09.txt").unlink()  # staged in the spare: shard 4 unlinked
    fewer = build(tmp_path / "seeds", tmp_path / "dist", settings)
    assert [p for p in fewer.removed if p.startswith("pagefind/4/")]
    again = build(tmp_path / "seeds", tmp_path / "dist", settings)
    assert again.written == [] and list(again.timings) == ["parse"], again.timings


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second file system")
def test_pages_reused_from_dist_without_their_objects_are_still_indexed(tmp_path):
    """A cache on another file system (dist/ holds copies, not links) that lost objects: the
    pages kept in dist/ are what Pagefind reads."""
    import tempfile

    shutil.copytree(SEEDS, tmp_path / "seeds")
    cache = Path(tempfile.mkdtemp(dir="/dev/shm"))
    settings = site(cache_dir=str(cache))
    build(tmp_path / "seeds", tmp_path / "dist", settings)
    for lang in ("ko", "en"):  # the objects of the oldest digest's pages, kept in dist/
        sha = hashlib.sha256((tmp_path / "dist" / lang / "2024-10-29" / "index.html").read_bytes())
        (cache / "objects" / sha.hexdigest()[:2] / sha.hexdigest()).unlink()
    new = (SEEDS / "2024-11-07.txt").read_text().replace("2024년 11월 7일", "2024년 11월 9일")
    (tmp_path / "seeds" / "2024-11-09.txt").write_text(new)
    report = build(tmp_path / "seeds", tmp_path / "dist", settings)
    assert report.search_indexed == 1 and report.reused > 0
    entry = json.loads((tmp_path / "dist" / "pagefind" / "1" / "pagefind-entry.json").read_text())
    assert entry["languages"]["en"]["page_count"] == 4
    shutil.rmtree(cache)
