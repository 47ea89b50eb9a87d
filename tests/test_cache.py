"""The render cache and the process pool change how fast a build is, never what it writes."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from feeds.archive import load_archive
from feeds.build import build
from feeds.cache import BuildRecord, Cache, Written
from feeds.config import Settings, make_settings
from feeds.corpus import generate
from feeds.errors import ParseError
from feeds.inputs import FRESH_NS

BASE = "https://example.org/notes/"

pytestmark = pytest.mark.slow  # builds of a generated corpus


def site(cache: Path, **kw) -> Settings:
    return make_settings(base_url=BASE, cache_dir=str(cache), **kw)


def tree(root: Path) -> dict[str, str]:
    """Every file under root, by relative path, with the SHA-256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("corpus") / "src"
    generate(src, 80, seed=3)  # enough jobs (80 digests, ~140 tag pages and feeds) for the pool
    return src


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A build with one worker and a cold cache: what every other build must equal."""
    work = tmp_path_factory.mktemp("reference")
    src = work / "src"
    shutil.copytree(corpus, src)
    report = build(src, work / "dist", site(work / "cache", workers=1))
    assert report.workers == 1 and report.reused == 0 and report.rendered > 200
    return work, tree(work / "dist")


def copy_corpus(corpus: Path, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(corpus, src)
    return src


def test_output_does_not_depend_on_the_number_of_workers(corpus, reference, tmp_path):
    _, expected = reference
    src = copy_corpus(corpus, tmp_path)
    report = build(src, tmp_path / "dist", site(tmp_path / "cache", workers=2))
    assert report.workers == 2, "the pool was not used: the test would prove nothing"
    assert report.parsed_by_workers == 80  # a first build: the workers parse every file
    assert tree(tmp_path / "dist") == expected


def test_problems_in_files_the_workers_parse_are_reported_as_the_build_reads_them(corpus, tmp_path):
    """Parsed by the workers or here, every problem in every file, with its file and line."""
    src = copy_corpus(corpus, tmp_path)
    (src / "2019-01-05.txt").write_text("2019년 1월 5일\n\n", encoding="utf-8")  # no notes
    broken = src / "2019-01-12.txt"
    broken.write_bytes(broken.read_bytes().replace("1월 12일".encode(), "2월 30일".encode(), 1))
    (src / "2019-01-20.txt").write_bytes(b"\xff\xfe not text")
    found = {}
    for workers in (1, 2):
        with pytest.raises(ParseError) as raised:
            build(
                src,
                tmp_path / f"dist{workers}",
                site(tmp_path / f"cache{workers}", workers=workers),
            )
        found[workers] = [(p.source, p.line, p.message) for p in raised.value.problems]
        assert not (tmp_path / f"dist{workers}").exists()
    assert found[1] == found[2]
    assert {Path(source).name for source, _, _ in found[2]} == {
        "2019-01-05.txt",
        "2019-01-12.txt",
        "2019-01-20.txt",
    }


def test_warm_cold_and_corrupted_cache_give_the_same_dist(corpus, reference, tmp_path):
    ref_work, expected = reference
    src = copy_corpus(corpus, tmp_path)
    cache = tmp_path / "cache"
    shutil.copytree(ref_work / "cache", cache)

    # Warm cache, empty dist/: nothing renders, every file comes from the cache.
    warm = build(src, tmp_path / "warm", site(cache, workers=1))
    assert warm.rendered == 0 and warm.reused > 200
    assert tree(tmp_path / "warm") == expected

    # Damage cached outputs of a digest page, a newsletter and a feed (same size, other bytes),
    # and the record of a parsed digest: each must be noticed and made again, not published.
    objects = {p.name: p for p in (cache / "objects").rglob("*") if p.is_file()}
    victims = [expected["en/2019-01-05/index.html"], expected["newsletters/2019-01-05/ko.eml"]]
    victims.append(expected["ko/atom.xml"])
    for sha in victims:
        data = objects[sha].read_bytes()
        objects[sha].write_bytes(data[:100] + b"#" * 10 + data[110:])
    parsed = sorted((cache / "parsed").iterdir())[0]
    damaged_parse = parsed.read_bytes()[:-20] + b"\0" * 20
    parsed.write_bytes(damaged_parse)

    damaged = build(src, tmp_path / "damaged", site(cache, workers=1))
    assert damaged.rendered == 2  # the digest's job (page and newsletters) and the ko feed's
    assert tree(tmp_path / "damaged") == expected
    assert parsed.read_bytes() != damaged_parse  # parsed again and stored afresh

    # Cold: no cache at all.
    cold = build(src, tmp_path / "cold", site(tmp_path / "empty", workers=1))
    assert cold.reused == 0
    assert tree(tmp_path / "cold") == expected


def test_each_feed_item_is_rendered_once_and_a_damaged_item_store_is_never_trusted(
    corpus, reference, tmp_path
):
    """Feed items come from the item store (feeds.fragments): one row per note and language,
    however many feeds list the note. A row whose bytes changed, or a store that is not a
    database at all, must never reach dist/."""
    ref_work, expected = reference
    src = copy_corpus(corpus, tmp_path)
    store = ref_work / "cache" / "items.sqlite"
    with sqlite3.connect(store) as db:
        (rows,) = db.execute("SELECT count(*) FROM items").fetchone()
    notes = sum(len(d.notes) for d in load_archive(src).archive.digests)
    assert rows == 2 * notes  # each note's item once per language, not once per feed

    cache = tmp_path / "cache"
    shutil.copytree(ref_work / "cache", cache)
    index = cache / "index"
    with sqlite3.connect(cache / "items.sqlite") as db:  # every item: same size, other bytes
        db.execute("UPDATE items SET atom = replace(atom, '<title>', '<titlx>')")
    index.unlink()  # every feed renders again, from the damaged items
    again = build(src, tmp_path / "damaged", site(cache, workers=2))
    assert again.rendered > 200 and tree(tmp_path / "damaged") == expected

    (cache / "items.sqlite").write_bytes(b"not a database" * 1000)
    index.unlink()
    build(src, tmp_path / "garbage", site(cache, workers=2))
    assert tree(tmp_path / "garbage") == expected
    assert not (cache / "items.sqlite").exists()  # thrown away, made afresh by the next build
    index.unlink()
    build(src, tmp_path / "afresh", site(cache, workers=2))
    assert tree(tmp_path / "afresh") == expected
    with sqlite3.connect(cache / "items.sqlite") as db:
        assert db.execute("SELECT count(*) FROM items").fetchone() == (rows,)


@pytest.mark.parametrize("workers", [1, 2])
def test_no_change_rebuild_touches_nothing_and_edits_render_little(corpus, tmp_path, workers):
    """With two workers, one of them looks at what dist/ holds while the build loads."""
    src = copy_corpus(corpus, tmp_path)
    settings = site(tmp_path / "cache", workers=workers)
    build(src, tmp_path / "dist", settings)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "dist").rglob("*") if p.is_file()}

    again = build(src, tmp_path / "dist", settings)
    assert (again.written, again.removed, again.rendered) == ([], [], 0)
    assert again.unchanged == len(before)
    assert before == {
        p: p.stat().st_mtime_ns for p in (tmp_path / "dist").rglob("*") if p.is_file()
    }

    # A file changed in dist/ behind the build's back is put right, though no input changed.
    page = tmp_path / "dist" / "ko" / "2019-01-05" / "index.html"
    original = page.read_bytes()
    page.write_bytes(b"<p>defaced</p>")
    fixed = build(src, tmp_path / "dist", settings)
    assert fixed.written == ["ko/2019-01-05/index.html"] and page.read_bytes() == original

    # One note edited: its digest, its tags' pages and feeds, the language feeds render again.
    digest = src / "2019-01-05.txt"
    digest.write_text(digest.read_text(encoding="utf-8-sig").replace("#", "#edited-", 1))
    edited = build(src, tmp_path / "dist", settings)
    assert 0 < edited.rendered < 20, edited.rendered
    assert (
        "ko/2019-01-05/index.html" in edited.written
        and "ko/2019-01-12/index.html" not in edited.written
    )


def test_a_damaged_build_record_is_not_trusted(corpus, reference, tmp_path):
    """The record of what a build left in dist/ lets the next one stop early: one whose seal
    does not match counts for nothing, even when it reads well and claims a defaced page."""
    _, expected = reference
    src = copy_corpus(corpus, tmp_path)
    settings = site(tmp_path / "cache", workers=2)
    dist = tmp_path / "dist"
    build(src, dist, settings)
    assert build(src, dist, settings).reused == 0  # stopped early: nothing planned

    page = dist / "ko" / "2019-01-05" / "index.html"
    defaced = page.read_bytes().replace(b"</h1>", b" (defaced)</h1>", 1)
    page.unlink()  # a new file: the cached object it was linked to stays whole
    page.write_bytes(defaced)
    # A record that vouches for the defaced page, written through the cache's own API, and
    # then its seal damaged: a record that reads well but whose seal does not match.
    cache = Cache(tmp_path / "cache")
    last = cache.load_record(dist)
    files = dict(last.files)
    files["ko/2019-01-05/index.html"] = Written.at(str(page), files["ko/2019-01-05/index.html"].sha)
    cache.save_record(dist, BuildRecord.of(last.fingerprint, files, last.problems))
    (record,) = (tmp_path / "cache" / "builds").iterdir()
    data = record.read_bytes()
    record.write_bytes(bytes([data[0] ^ 1]) + data[1:])

    checked = build(src, dist, settings)
    assert checked.reused > 200 and checked.rendered == 0  # planned in full, rendered nothing
    assert checked.written == ["ko/2019-01-05/index.html"] and tree(dist) == expected
    assert build(src, dist, settings).reused == 0  # the record is whole again


@pytest.mark.parametrize("workers", [1, 2])
def test_builds_staged_in_the_spare_tree_equal_fresh_ones(corpus, reference, tmp_path, workers):
    """The tree a build replaced is kept as .dist.spare and the next build stages in it:
    whatever that tree holds, the new dist/ equals a build from scratch. (With workers, a
    build takes the spare tree at once and a worker lists it.)"""
    _, expected = reference
    src = copy_corpus(corpus, tmp_path)
    settings = site(tmp_path / "cache", workers=workers)
    dist, spare = tmp_path / "dist", tmp_path / ".dist.spare"
    build(src, dist, settings)
    assert not spare.exists()  # a first build replaces no tree
    extra = src / "2100-01-01.txt"
    extra.write_text(
        (src / "2019-01-05.txt")
        .read_text(encoding="utf-8-sig")
        .replace("2019년 1월 5일", "2100년 1월 1일", 1)
    )
    build(src, dist, settings)
    assert tree(spare) == expected  # the tree it replaced: the next build stages in it
    extra.unlink()
    build(src, dist, settings)  # back to the reference, staged in the first build's tree
    assert tree(dist) == expected and tree(spare) != expected
    (src / ".feeds-state.json").unlink()  # the digest came and went: no note marked updated

    # Damage the spare tree: other bytes under a file's name (a new inode), a stray file and
    # folder, a missing file. None of it may reach dist/.
    (spare / "ko" / "2019-01-12" / "index.html").unlink()
    (spare / "ko" / "2019-01-12" / "index.html").write_bytes(b"<p>stale</p>")
    (spare / "stray" / "deep").mkdir(parents=True)
    (spare / "stray" / "deep" / "page.html").write_bytes(b"stray")
    (spare / "en" / "index.html").unlink()
    inodes = {path: path.stat().st_ino for path in dist.rglob("*") if path.is_file()}

    digest = src / "2019-01-05.txt"
    original = digest.read_text(encoding="utf-8-sig")
    digest.write_text(original.replace("#", "#edited-", 1))
    edited = build(src, dist, settings)
    build(src, tmp_path / "fresh", site(tmp_path / "cache", workers=1))
    assert tree(dist) == tree(tmp_path / "fresh") != expected
    assert 0 < len(edited.written) < 60 and edited.unchanged > 600
    kept = [
        path
        for path in inodes
        if path.exists() and str(path.relative_to(dist)) not in edited.written
    ]
    assert len(kept) == edited.unchanged and all(p.stat().st_ino == inodes[p] for p in kept)
    assert not (spare / "stray").exists()

    # Back again (the feeds now say the note was updated): staged in the first build's tree.
    digest.write_text(original)
    build(src, dist, settings)
    build(src, tmp_path / "fresh2", site(tmp_path / "cache", workers=1))
    assert tree(dist) == tree(tmp_path / "fresh2")
    assert {p.name for p in tmp_path.glob(".dist*")} == {".dist.spare", ".dist.lock"}
    assert (spare / "ko" / "2019-01-12" / "index.html").read_bytes() != b"<p>stale</p>"

    # A build that fails, or has nothing to write, gives the tree it took back as the spare.
    (src / "zz-broken.txt").write_text("no date header\n", encoding="utf-8")
    with pytest.raises(ParseError):
        build(src, dist, settings)
    assert {p.name for p in tmp_path.glob(".dist*")} == {".dist.spare", ".dist.lock"}
    (src / "zz-broken.txt").unlink()
    (dist / "ko" / "index.html").touch()  # the same bytes, another stat: nothing to write
    untouched = build(src, dist, settings)
    assert untouched.written == [] and untouched.unchanged == len(tree(tmp_path / "fresh2"))
    assert {p.name for p in tmp_path.glob(".dist*")} == {".dist.spare", ".dist.lock"}
    assert tree(dist) == tree(tmp_path / "fresh2")


@pytest.mark.slow
def test_a_digest_edited_without_changing_size_or_mtime_is_read_again(corpus, tmp_path):
    """A digest file whose stat is as the last build recorded is not read again; any write
    changes its ctime, which no one can set back, so even a same-size edit with the old mtime
    put back is seen."""
    src = copy_corpus(corpus, tmp_path)
    time.sleep(FRESH_NS / 1e9 + 0.1)  # a stat vouches for a file only once it has settled
    settings = site(tmp_path / "cache", workers=1)
    build(src, tmp_path / "dist", settings)
    assert build(src, tmp_path / "dist", settings).written == []

    digest = src / "2019-01-12.txt"
    before = digest.stat()
    data = digest.read_bytes()
    title = data.splitlines()[2].decode()
    edited = data.replace(title.encode(), title[::-1].encode(), 1)
    assert len(edited) == len(data) and edited != data
    digest.write_bytes(edited)
    os.utime(digest, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert digest.stat().st_mtime_ns == before.st_mtime_ns

    report = build(src, tmp_path / "dist", settings)
    assert "ko/2019-01-12/index.html" in report.written
    page = (tmp_path / "dist" / "ko" / "2019-01-12" / "index.html").read_text()
    assert title[::-1][:20] in page


def test_cache_dir_comes_from_the_environment(corpus, tmp_path, monkeypatch):
    from feeds.config import load_settings

    monkeypatch.setenv("FEEDS_CACHE_DIR", str(tmp_path / "elsewhere"))
    settings, _ = load_settings(None, {"base_url": BASE})
    assert settings.build.cache_dir == str(tmp_path / "elsewhere")
    src = copy_corpus(corpus, tmp_path)
    build(src, tmp_path / "dist", settings)
    assert any((tmp_path / "elsewhere" / "objects").rglob("*"))
    assert not (tmp_path / "dist" / ".feeds-cache").exists()
    assert os.path.isdir(tmp_path / "elsewhere" / "parsed")


MARK = "zz-template-edit"


def _job_counts(dist: Path) -> dict[str, int]:
    """How many jobs of each kind a build has, from what they write: a feed job one *atom.xml, a
    digest job and a tag page job one page per language each."""
    return {
        "feeds": len(list(dist.rglob("*atom.xml"))),  # a document of a feed: one of each format
        "digests": len(list((dist / "ko").glob("[0-9]*/index.html"))),
        "tag pages": len(list((dist / "ko" / "tags").glob("*/*.html"))),
    }


@pytest.fixture(scope="module")
def small_site(tmp_path_factory) -> Path:
    """A folder with a built archive of a few digests: src/, templates/ (a copy of the
    defaults), dist/ and cache/."""
    from feeds.templating import default_templates_dir

    work = tmp_path_factory.mktemp("small")
    generate(work / "src", 8, seed=3)
    shutil.copytree(default_templates_dir(), work / "templates")
    settings = site(work / "cache", workers=1, templates_dir=str(work / "templates"))
    build(work / "src", work / "dist", settings)
    return work


@pytest.mark.parametrize(
    ("template", "edit", "kinds"),
    [
        ("_note.html", lambda t: t + f"<p>{MARK}</p>\n", {"digests"}),
        ("feed_item.html", lambda t: t + f"<p>{MARK}</p>\n", {"feeds"}),
        ("base.html", lambda t: t + f"<!-- {MARK} -->\n", {"digests", "tag pages"}),
        ("newsletter.txt", lambda t: t + f"{MARK}\n", {"digests"}),
        (
            # A template named only at run time: the tag pages may now use any template.
            "tag.html",
            lambda t: t.replace(
                "{% block content %}",
                '{% block content %}{% include ("zz-" ~ "nowhere.html") ignore missing %}',
                1,
            ),
            {"tag pages"},
        ),
    ],
)
def test_a_template_edit_renders_again_only_the_jobs_that_render_it(
    small_site, tmp_path, template, edit, kinds
):
    work = tmp_path / "work"
    shutil.copytree(small_site, work, symlinks=True)
    templates = work / "templates"
    path = templates / template
    path.write_text(edit(path.read_text()))
    settings = site(work / "cache", workers=1, templates_dir=str(templates))

    report = build(work / "src", work / "dist", settings)
    counts = _job_counts(work / "dist")
    assert report.rendered == sum(counts[kind] for kind in kinds), (report.rendered, counts)

    # What the cache kept is what a build from scratch with the edited templates writes.
    fresh = site(tmp_path / "fresh-cache", workers=1, templates_dir=str(templates))
    build(work / "src", tmp_path / "fresh", fresh)
    assert tree(work / "dist") == tree(tmp_path / "fresh")
    if template != "tag.html":  # that edit renders nothing new
        written = (p.read_bytes() for p in (work / "dist").rglob("*") if p.is_file())
        assert any(MARK.encode() in data for data in written)

    # With a template named only at run time, editing any template renders the tag pages too.
    if template == "tag.html":
        item = templates / "feed_item.html"
        item.write_text(item.read_text() + f"<p>{MARK}</p>\n")
        again = build(work / "src", work / "dist", settings)
        assert again.rendered == counts["feeds"] + counts["tag pages"]
