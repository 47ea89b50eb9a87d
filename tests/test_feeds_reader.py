"""Feeds as a reader lives with them: links out of every note, the whole history through RFC 5005
archives, ids that survive edits, and languages that say what they are. Read back by feedparser,
the JSON Feed schema and lemon24/reader."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import feedparser
import pytest
from reader import make_reader

from feeds.archive import load_archive
from feeds.build import build
from feeds.config import make_settings

from .conftest import SEEDS
from .test_feeds import read_feed

BASE = "https://example.org/notes/"
FORMATS = ("atom.xml", "rss.xml", "feed.json")


def site(tmp_path: Path, **kw: object):
    return make_settings(
        base_url=BASE, author_email="ed@example.org", cache_dir=str(tmp_path / "cache"), **kw
    )


def copy_seeds(tmp_path: Path) -> Path:
    src = tmp_path / "seeds"
    shutil.copytree(SEEDS, src, ignore=shutil.ignore_patterns(".feeds-state.json"))
    return src


def local(dist: Path, url: str) -> Path:
    return dist / url.removeprefix(BASE)


# -- 1. links out of every note ----------------------------------------------------------------


def test_urls_in_notes_are_links_and_each_note_has_one_paper_link(tmp_path):
    src = copy_seeds(tmp_path)
    build(src, tmp_path / "dist", site(tmp_path))
    dist = tmp_path / "dist"
    tk = "https://hazyresearch.stanford.edu/blog/2024-05-12-tk"
    atom = feedparser.parse((dist / "ko" / "atom.xml").read_bytes())
    kittens = next(
        e
        for e in feedparser.parse(
            (dist / "ko" / "tags" / "efficiency" / "atom.xml").read_bytes()
        ).entries
        if "Kittens" in e.title
    )
    assert f'<a href="{tk}">{tk}</a>) 논문이' in kittens.content[0].value
    related = {link.rel: link.href for link in kittens.links}
    assert related["alternate"] == kittens.id and related["related"].startswith(
        "https://arxiv.org/search/?query=ThunderKittens%3A+Simple"
    )
    # A note that cites an arXiv paper in its commentary links to it.
    cited = "https://arxiv.org/abs/1907.01470"
    notes = {e.title: e for e in atom.entries}
    for fmt in FORMATS:
        feed = read_feed(dist / "ko" / "tags" / "transformer" / fmt)
        assert feed.bozo == 0
    document = json.loads((dist / "en" / "feed.json").read_text())
    external = {item["title"]: item.get("external_url") for item in document["items"]}
    assert all(external.values())
    token_former = next(t for t in external if t.startswith("TokenFormer"))
    assert external[token_former] == cited
    page = (dist / "en" / "2024-11-04-1" / "index.html").read_text()
    assert f'<a class="paper" data-pagefind-ignore href="{cited}" lang="en">Paper</a>' in page
    assert f'(<a href="{cited}">{cited}</a>)' in page
    assert len(notes) >= 1


# -- 2. the whole history ------------------------------------------------------------------------


def walk(dist: Path, start: Path) -> tuple[list[str], list[Path]]:
    """Every item id a client finds following RFC 5005 from a subscription document (JSON Feed:
    next_url), and the documents it read."""
    ids, seen, at = [], [], start
    while at is not None:
        seen.append(at)
        if at.suffix == ".json":
            document = json.loads(at.read_text())
            ids += [item["id"] for item in document["items"]]
            nxt = document.get("next_url")
        else:
            parsed = feedparser.parse(at.read_bytes())
            assert parsed.bozo == 0, parsed.bozo_exception
            ids += [e.id for e in parsed.entries]
            links = {link.rel: link.href for link in parsed.feed.get("links", [])}
            nxt = links.get("prev-archive")
            if at != start:
                assert links["current"] == BASE + start.relative_to(dist).as_posix()
                assert "archive" in at.read_text().split("<entry>")[0].split("<item>")[0]
        at = local(dist, nxt) if nxt else None
    return ids, seen


@pytest.mark.parametrize("limit", [3, 7])
def test_following_the_archives_gives_every_note_once_newest_first(tmp_path, limit):
    src = copy_seeds(tmp_path)
    build(src, tmp_path / "dist", site(tmp_path, feed_limit=limit))
    dist = tmp_path / "dist"
    archive = load_archive(src).archive
    for lang in ("ko", "en"):
        every = [f"{BASE}{lang}/{d.id}/#{n.slug}" for d in archive.digests for n in d.notes]
        tagged = [
            f"{BASE}{lang}/{d.id}/#{n.slug}"
            for d in archive.digests
            for n in d.notes
            if "diffusion" in n.tags
        ]
        for fmt in FORMATS:
            ids, documents = walk(dist, dist / lang / fmt)
            assert ids == every and len(documents) > 2
            first = read_feed(dist / lang / fmt).entries
            assert limit <= len(first) < 2 * limit
            assert [e.id for e in first] == every[: len(first)]
            tag_ids, _ = walk(dist, dist / lang / "tags" / "diffusion" / fmt)
            assert tag_ids == tagged


@pytest.mark.parametrize("archive_items", ["summary", "full"])
def test_tag_feed_archives_carry_summaries_and_the_language_feed_every_text(
    tmp_path, archive_items
):
    """The whole text of every note is once per format in the language feed's history; a tag
    feed's archives list its notes by title, summary and link (unless tag_archive_items is
    "full"), with the same ids as everywhere."""
    src = copy_seeds(tmp_path)
    settings = site(tmp_path, feed_limit=3, tag_archive_items=archive_items)
    build(src, tmp_path / "dist", settings)
    dist = tmp_path / "dist"
    pages = {n.slug: n for d in load_archive(src).archive.digests for n in d.notes}
    for fmt in FORMATS:
        for start, full in [("en", True), ("en/tags/transformer", archive_items == "full")]:
            _, documents = walk(dist, dist / start / fmt)
            assert len(documents) > 1
            for number, document in enumerate(documents):
                parsed = read_feed(document)
                assert parsed.bozo == 0, parsed.bozo_exception
                for entry in parsed.entries:
                    note = pages[entry.id.rsplit("#", 1)[1]]
                    assert entry.link == entry.id and entry.title == note.title
                    summary = html.unescape(entry.summary)  # feedparser: RSS gives HTML
                    assert summary == (note.english or note.abstract or (note.title,))[0]
                    assert ("content" in entry) == (full or number == 0), (document, entry.id)


def test_a_full_archive_document_never_changes_when_notes_are_added(tmp_path):
    src = copy_seeds(tmp_path)
    settings = site(tmp_path, feed_limit=3)
    build(src, tmp_path / "dist", settings)
    dist = tmp_path / "dist"
    before = {p.name: p.read_bytes() for p in (dist / "ko" / "feeds").iterdir()}
    newest = (src / "2024-11-07.txt").read_text(encoding="utf-8")
    (src / "2024-11-09.txt").write_text(newest.replace("2024년 11월 7일", "2024년 11월 9일"))
    build(src, dist, settings)
    after = {p.name: p.read_bytes() for p in (dist / "ko" / "feeds").iterdir()}
    changed = sorted(name for name in before if after[name] != before[name])
    last = max(int(name.split(".")[0]) for name in before)
    # Only the newest archive, once: it links next-archive now (JSON Feed links older only).
    assert changed == [f"{last}.atom.xml", f"{last}.rss.xml"]
    assert set(after) > set(before)


# -- 3. ids that survive edits ----------------------------------------------------------------------


def entry_ids(dist: Path) -> dict[str, list[str]]:
    return {
        f"{lang}/{fmt}": [e.id for e in read_feed(dist / lang / fmt).entries]
        for lang in ("ko", "en")
        for fmt in FORMATS
    }


@pytest.mark.slow
def test_a_title_edit_keeps_every_id_and_a_reader_sees_no_new_entry(tmp_path):
    src = copy_seeds(tmp_path)
    settings = site(tmp_path, feed_limit=0)
    dist = tmp_path / "dist"
    build(src, dist, settings)
    before = entry_ids(dist)
    reader = make_reader(":memory:", feed_root=str(dist))
    reader.add_feed("en/atom.xml")
    assert reader.update_feed("en/atom.xml").new == len(before["en/atom.xml"])
    known = {e.id for e in reader.get_entries()}

    digest = src / "2024-10-29.txt"
    text = digest.read_text(encoding="utf-8")
    digest.write_text(text.replace("Mixture of Parrots: Experts", "Mixture of Parrots - Experts"))
    report = build(src, dist, settings)
    assert report.state_changed == "1 edited"
    assert entry_ids(dist) == before
    later = (dist / "en" / "atom.xml").stat().st_mtime + 60  # as if served a minute later
    os.utime(dist / "en" / "atom.xml", (later, later))
    updated = reader.update_feed("en/atom.xml")
    assert (updated.new, updated.modified) == (0, 1)  # the edited entry, not a new one
    assert {e.id for e in reader.get_entries()} == known
    parrots = next(e for e in reader.get_entries() if "Parrots" in e.title)
    assert parrots.title.startswith("Mixture of Parrots - Experts")
    page = (dist / "en" / "2024-10-29" / "index.html").read_text()
    old = "mixture-of-parrots-experts-improve-memorization-more-than-reasoning"
    assert f'id="{old}"' in page  # the permalink still lands
    assert 'id="mixture-of-parrots-experts-improve-memorization-more-than-reasoning"' in page


@pytest.mark.slow
def test_reordering_or_inserting_notes_changes_no_id(tmp_path):
    src = copy_seeds(tmp_path)
    settings = site(tmp_path, feed_limit=0)
    dist = tmp_path / "dist"
    build(src, dist, settings)
    before = set(entry_ids(dist)["en/atom.xml"])
    digest = src / "2024-11-07.txt"
    lines = digest.read_text(encoding="utf-8").splitlines()
    header, body = lines[0], "\n".join(lines[1:])
    notes = re.split(r"\n(?=\S[^\n]*\n\()", body)  # a title line, then an authors line
    assert len(notes) == 5
    copy = notes[2].replace("LASER: Attention", "LASER: Attention", 1)
    digest.write_text("\n".join([header, notes[4], copy, *notes[:4]]) + "\n")
    build(src, dist, settings)
    after = entry_ids(dist)["en/atom.xml"]
    assert before <= set(after)  # every id kept
    laser = [i for i in after if "#laser-attention" in i]
    assert len(laser) == 2 and len(set(after)) == len(after)  # the copy got a distinct slug
    digest.write_text("\n".join([header, notes[4], *notes[:4], copy]) + "\n")
    build(src, dist, settings)
    assert entry_ids(dist)["en/atom.xml"].count(laser[0]) == 1
    assert set(entry_ids(dist)["en/atom.xml"]) == set(after)  # the colliding pair kept theirs


def test_a_build_that_would_change_the_state_can_be_refused(tmp_path):
    src = copy_seeds(tmp_path)
    build(src, tmp_path / "dist", site(tmp_path))
    digest = src / "2024-10-29.txt"
    digest.write_text(digest.read_text(encoding="utf-8").replace("#moe", "#moe #sparse"))
    from feeds.errors import FeedsError

    before = {p: p.read_bytes() for p in (tmp_path / "dist").rglob("*") if p.is_file()}
    with pytest.raises(FeedsError) as raised:
        build(src, tmp_path / "dist", site(tmp_path, frozen_state=True))
    assert str(raised.value) == (
        f"{src / '.feeds-state.json'}: the build would change it (1 edited): build where the "
        "digests are written and commit .feeds-state.json with them"
    )
    assert {p: p.read_bytes() for p in (tmp_path / "dist").rglob("*") if p.is_file()} == before


# -- 4. languages that say what they are ----------------------------------------------------------


KOREAN_ONLY = """2024년 11월 8일
Scaling Laws for Something New
(Ada Kim, Bo Lee)
We study scaling laws for a new kind of model and find a power law.
새로운 종류의 모델에 대한 스케일링 법칙 연구. 멱법칙을 따른다는 결과가 나왔군요.
#scaling
"""


def test_a_korean_only_note_shows_its_korean_commentary_as_korean_in_english(tmp_path):
    src = copy_seeds(tmp_path)
    (src / "2024-11-08.txt").write_text(KOREAN_ONLY)
    build(src, tmp_path / "dist", site(tmp_path))
    dist = tmp_path / "dist"
    page = (dist / "en" / "2024-11-08" / "index.html").read_text()
    assert '<div class="other-language" lang="ko">' in page
    assert '<p class="label" lang="en">Commentary in Korean</p>' in page
    item = json.loads((dist / "en" / "feed.json").read_text())["items"][0]
    assert '<p lang="ko">새로운 종류의 모델' in item["content_html"]
    assert "Commentary in Korean" in item["content_html"]
    mail = (dist / "newsletters" / "2024-11-08" / "en.html").read_text()
    assert re.search(r'<p style="[^"]*word-break: keep-all[^"]*" lang="ko">새로운', mail)
    text = (dist / "newsletters" / "2024-11-08" / "en.txt").read_text()
    assert "[Commentary in Korean]" in text


def test_an_edit_of_one_language_updates_that_language_only(tmp_path):
    src = copy_seeds(tmp_path)
    settings = site(tmp_path)
    dist = tmp_path / "dist"
    build(src, dist, settings)
    digest = src / "2024-10-29.txt"
    digest.write_text(
        digest.read_text(encoding="utf-8").replace(
            "we might be able to make further progress.", "we might make further progress."
        )
    )
    build(src, dist, settings)

    def updated(lang: str, fmt: str) -> str:
        found = read_feed(dist / lang / fmt).entries
        parrots = next(e for e in found if "Parrots" in e.title)
        return parrots.updated if fmt != "rss.xml" else parrots.get("updated", parrots.published)

    for fmt in ("atom.xml", "feed.json"):
        assert updated("en", fmt).startswith("2024-11-07T00:00:06")
        assert updated("ko", fmt).startswith("2024-10-29T00:00:09")  # as published: no edit
