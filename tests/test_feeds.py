"""Feeds per language and per tag, read back by a real feed reader library (feedparser)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from datetime import datetime
from pathlib import Path
from unittest import mock
from xml.etree import ElementTree

import feedparser
import pytest
from feedparser import FeedParserDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from feeds import feed
from feeds.archive import load_archive
from feeds.build import build
from feeds.channels import FeedEntry, note_channel, note_item
from feeds.config import Settings, make_settings
from feeds.feed import render_feed, render_items
from feeds.model import LANGS, Archive, Digest, Note, Page, clean_note, clean_text
from feeds.opml import render_opml
from feeds.templating import make_environment
from feeds.urls import OPML_PATH

from .conftest import SEEDS

BASE = "https://example.org/notes/"
SAMPLE_TAGS = sorted(
    [
        "activation",
        "alignment",
        "benchmark",
        "diffusion",
        "efficiency",
        "generative-model",
        "inductive-bias",
        "instruction-tuning",
        "llm",
        "long-context",
        "math",
        "mechanistic-interpretation",
        "moe",
        "non-autoregressive",
        "optimizer",
        "positional-encoding",
        "reasoning",
        "regularization",
        "search",
        "synthetic-data",
        "tokenizer",
        "transformer",
        "video-generation",
        "vq",
    ]
)


def site(**kw) -> Settings:
    return make_settings(base_url=BASE, author_name="Editor", author_email="ed@example.org", **kw)


def build_seeds(tmp_path: Path, name: str = "dist", **kw) -> Path:
    src = tmp_path / "seeds"
    if not src.exists():
        shutil.copytree(SEEDS, src, ignore=shutil.ignore_patterns(".feeds-state.json"))
    build(src, tmp_path / name, site(**kw))
    return tmp_path / name


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    return build_seeds(tmp_path_factory.mktemp("feeds"))


@pytest.fixture(scope="module")
def archive() -> Archive:
    return load_archive(SEEDS).archive


JSON_FEED_SCHEMA = json.loads((Path(__file__).parent / "jsonfeed-1.1.schema.json").read_text())


def read_feed(path: Path, data: bytes | None = None):
    """Parse a feed: XML with feedparser; JSON Feed (which feedparser 6 cannot read) validated
    against the JSON Feed 1.1 schema and mapped onto feedparser's result shape."""
    data = path.read_bytes() if data is None else data
    if path.suffix != ".json":
        return feedparser.parse(data)
    document = json.loads(data)
    errors = [
        e.message
        for e in Draft202012Validator(JSON_FEED_SCHEMA, format_checker=FormatChecker()).iter_errors(
            document
        )
    ]
    entries = [
        FeedParserDict(
            id=item["id"],
            link=item["url"],
            title=item["title"],
            summary=item["summary"],
            published=item["date_published"],
            updated=item["date_modified"],
            published_parsed=datetime.fromisoformat(item["date_published"]).utctimetuple(),
            tags=[FeedParserDict(term=t) for t in item["tags"]],
            # As feedparser gives an entry without content: no "content" at all.
            **(
                {"content": [FeedParserDict(value=item["content_html"])]}
                if "content_html" in item
                else {}
            ),
        )
        for item in document["items"]
    ]
    feed = FeedParserDict(language=document.get("language"), title=document["title"])
    return FeedParserDict(bozo=int(bool(errors)), bozo_exception=errors, entries=entries, feed=feed)


def feed_paths(dist: Path) -> list[Path]:
    return sorted(p for p in dist.rglob("*") if p.name in ("atom.xml", "rss.xml", "feed.json"))


def test_one_feed_per_language_tag_and_format(dist):
    for lang in ("ko", "en"):
        assert sorted(p.name for p in (dist / lang / "tags").iterdir() if p.is_dir()) == SAMPLE_TAGS
    # per language: its notes feed, its digests feed and each tag's feed, in three formats
    assert len(feed_paths(dist)) == 2 * 3 * 2 + 2 * len(SAMPLE_TAGS) * 3
    assert (dist / "feeds.opml").is_file()


def test_every_feed_parses_cleanly(dist):
    for path in feed_paths(dist):
        parsed = read_feed(path)
        assert parsed.bozo == 0, (path, parsed.get("bozo_exception"))
        ids = [e.id for e in parsed.entries]
        assert len(ids) == len(set(ids)) > 0
        assert all(e.link.startswith(BASE) and e.link == e.id for e in parsed.entries)
        lang = path.relative_to(dist).parts[0]
        assert parsed.feed.language == lang or parsed.feed.get("language") == lang


@pytest.mark.parametrize("fmt", ["atom.xml", "rss.xml", "feed.json"])
def test_language_feed_items_in_order(dist, archive, fmt):
    parsed = read_feed(dist / "en" / fmt)
    expected = [(d.id, n) for d in archive.digests for n in d.notes]
    assert [e.title for e in parsed.entries] == [n.title for _, n in expected]
    assert [e.link for e in parsed.entries] == [
        f"{BASE}en/{digest_id}/#{n.slug}" for digest_id, n in expected
    ]
    times = [e.published_parsed for e in parsed.entries]
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times)
    assert parsed.entries[0].published.startswith(
        ("2024-11-07T00:00:05+09:00", "Thu, 07 Nov 2024 00:00:05 +0900")
    )


def test_tag_feeds_hold_exactly_the_tagged_notes(dist, archive):
    for tag in SAMPLE_TAGS:
        expected = [n.title for d in archive.digests for n in d.notes if tag in n.tags]
        for fmt in ("atom.xml", "rss.xml", "feed.json"):
            parsed = read_feed(dist / "ko" / "tags" / tag / fmt)
            assert [e.title for e in parsed.entries] == expected, (tag, fmt)


def test_ids_match_across_language_and_tag_feeds(dist):
    by_title = {e.title: e.id for e in read_feed(dist / "ko" / "atom.xml").entries}
    for fmt in ("rss.xml", "feed.json"):
        for e in read_feed(dist / "ko" / "tags" / "transformer" / fmt).entries:
            assert by_title[e.title] == e.id


def test_channel_metadata(dist):
    atom = ElementTree.parse(dist / "ko" / "tags" / "moe" / "atom.xml").getroot()
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert atom.get("{http://www.w3.org/XML/1998/namespace}lang") == "ko"
    links = {link.get("rel"): link.get("href") for link in atom.findall("a:link", ns)}
    assert links == {"self": f"{BASE}ko/tags/moe/atom.xml", "alternate": f"{BASE}ko/tags/moe/"}
    assert atom.find("a:author/a:name", ns).text == "Editor"
    assert atom.find("a:updated", ns).text == "2024-10-29T00:00:09+09:00"
    rss = ElementTree.parse(dist / "en" / "rss.xml").getroot()
    channel = rss.find("channel")
    assert channel.find("lastBuildDate").text == "Thu, 07 Nov 2024 00:00:05 +0900"
    assert channel.find("{http://www.w3.org/2005/Atom}link").get("href") == f"{BASE}en/rss.xml"
    item = channel.find("item")
    children = [c.tag for c in item]
    assert children.index("description") < children.index(
        "{http://purl.org/rss/1.0/modules/content/}encoded"
    )
    assert item.find("guid").get("isPermaLink") == "true"
    feed = json.loads((dist / "en" / "feed.json").read_text())
    assert feed["feed_url"] == f"{BASE}en/feed.json" and feed["version"].endswith("1.1")


def test_item_content_has_commentary_authors_abstract_and_tag_links(dist):
    entry = read_feed(dist / "en" / "atom.xml").entries[1]
    html = entry.content[0].value
    assert (
        html.index("An activation function composed")
        < html.index("Zhijian Zhuo")
        < html.index("Transformers have found")
    )
    assert f'href="{BASE}en/tags/activation/"' in html
    assert '<blockquote lang="en">' in html
    assert entry.summary.startswith("An activation function composed of polynomials")
    assert [t.term for t in entry.tags] == ["activation", "transformer"]


def test_websub_hub_and_feed_limit(tmp_path):
    dist = build_seeds(tmp_path, websub_hub="https://hub.example.org/", feed_limit=3)
    rss = (dist / "ko" / "rss.xml").read_text()
    assert '<atom:link rel="hub" href="https://hub.example.org/"/>' in rss
    atom = read_feed(dist / "ko" / "atom.xml")
    assert {link.rel: link.href for link in atom.feed.links}["hub"] == "https://hub.example.org/"
    assert 3 <= len(atom.entries) < 6  # feed_limit to twice that; the rest in archives
    assert json.loads((dist / "ko" / "feed.json").read_text())["hubs"][0]["type"] == "WebSub"
    archive = (dist / "ko" / "feeds" / "1.rss.xml").read_text()
    assert 'rel="hub"' not in archive  # archives are not pushed: they never change


def test_opml_lists_every_feed(dist):
    opml = ElementTree.parse(dist / "feeds.opml").getroot()
    urls = [o.get("xmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")]
    assert len(urls) == 2 * 2 + 2 * len(SAMPLE_TAGS)  # per language: notes, digests; tags
    for url in urls:
        assert (dist / url.removeprefix(BASE)).is_file()


def test_rebuild_is_byte_identical(tmp_path):
    first = build_seeds(tmp_path, "one")
    second = build_seeds(tmp_path, "two")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)


def test_editing_a_note_marks_it_updated(tmp_path):
    dist = build_seeds(tmp_path)
    digest = tmp_path / "seeds" / "2024-10-29.txt"
    digest.write_text(digest.read_text().replace("#efficiency", "#efficiency #kernels"))
    build(tmp_path / "seeds", dist, site())
    entries = read_feed(dist / "en" / "atom.xml").entries
    updated = {e.title: e.updated for e in entries}
    assert (
        updated["ThunderKittens: Simple, Fast, and Adorable AI Kernels"]
        == "2024-11-07T00:00:06+09:00"
    )
    assert (
        updated["MarDini: Masked Autoregressive Diffusion for Video Generation at Scale"]
        == "2024-10-29T00:00:08+09:00"
    )
    feed = read_feed(dist / "en" / "atom.xml").feed
    assert feed.updated == "2024-11-07T00:00:06+09:00"
    before = (dist / "en" / "atom.xml").read_bytes()
    build(tmp_path / "seeds", dist, site())
    assert (dist / "en" / "atom.xml").read_bytes() == before

    # A later build with other news keeps the edit's date (the state records it).
    newest = (tmp_path / "seeds" / "2024-11-07.txt").read_text()
    later = newest.replace("2024년 11월 7일", "2024년 11월 8일", 1)
    (tmp_path / "seeds" / "2024-11-08.txt").write_text(later)
    build(tmp_path / "seeds", dist, site())
    entries = read_feed(dist / "en" / "atom.xml").entries
    edited = [e.updated for e in entries if e.title.startswith("ThunderKittens")]
    assert edited == ["2024-11-07T00:00:06+09:00"]


DAMAGED_STAMPS = (
    '"soon"',
    "null",
    '{"ko": 7, "en": null, "fr": "x"}',
    '{"ko": "not a time", "en": null}',
    '{"ko": "2024-11-07T00:00:06", "en": null}',  # no offset: not comparable with note times
    '{"ko": "9999-12-31T23:59:59+09:00", "en": null}',  # no second after it for an edit
)
DAMAGED_PARTS = ("7", '"x"', '"a.b.c"', "null", '["a", "b"]')


def test_damaged_note_records_in_the_state_are_recorded_again(tmp_path):
    """Update times that are not one count as never updated, parts that are not a note's
    hashes as unknown (not as an edit): the same output, and the state recorded afresh."""
    dist = build_seeds(tmp_path)
    state = tmp_path / "seeds" / ".feeds-state.json"
    recorded = state.read_text()
    lines = recorded.split("\n")
    notes = [i for i, line in enumerate(lines) if '"parts": ' in line]
    never = '"updated": {"ko": null, "en": null}'
    assert all(never in lines[i] for i in notes)  # the seeds were never edited
    assert len(notes) >= len(DAMAGED_STAMPS) + len(DAMAGED_PARTS)
    for i, damaged in zip(notes, DAMAGED_STAMPS, strict=False):
        lines[i] = lines[i].replace(never, f'"updated": {damaged}')
    for i, damaged in zip(notes[len(DAMAGED_STAMPS) :], DAMAGED_PARTS, strict=False):
        lines[i] = re.sub(r'"parts": "[^"]*"', f'"parts": {damaged}', lines[i])
    state.write_text("\n".join(lines))
    before = {p: p.read_bytes() for p in dist.rglob("*") if p.is_file()}
    build(tmp_path / "seeds", dist, site())
    assert {p: p.read_bytes() for p in dist.rglob("*") if p.is_file()} == before
    assert state.read_text() == recorded


def raw_content_html(path: str, data: bytes) -> str:
    """The first item's HTML content exactly as the feed file carries it."""
    if path.endswith(".json"):
        return json.loads(data)["items"][0]["content_html"]
    root = ElementTree.fromstring(data)
    if path.endswith("atom.xml"):
        return root.find(
            "{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}content"
        ).text
    return root.find("channel/item/{http://purl.org/rss/1.0/modules/content/}encoded").text


HOSTILE = (
    st.lists(
        st.sampled_from(
            [
                *list("ab <>&\"'"),
                "]]>",
                "<script>",
                "\x00",
                "\x1b",
                "\u200f",
                "\u202e",
                "😀",
                "\ufffe",
                "한",
                "\x85",
            ]
        ),
        min_size=1,
        max_size=12,
    )
    .map("".join)
    .filter(lambda s: clean_text(s).strip())
)


TEXT = st.one_of(HOSTILE, st.text(max_size=20))


@settings(max_examples=200, deadline=None)
@given(title=TEXT, authors=st.lists(TEXT, max_size=3), paragraphs=st.lists(TEXT, max_size=3))
def test_clean_note_cleans_every_field_and_keeps_a_clean_note(title, authors, paragraphs):
    note = Note(title, "n", 2, (*authors,), (*paragraphs,), (*paragraphs,), ("x",), (title,))
    cleaned = clean_note(note)
    assert cleaned.title == clean_text(title)
    assert cleaned.authors == tuple(map(clean_text, authors))
    assert cleaned.abstract == cleaned.korean == tuple(map(clean_text, paragraphs))
    assert cleaned.tags == (clean_text(title),)
    assert clean_note(cleaned) == cleaned
    if "".join([title, *authors, *paragraphs]).replace("\n", "").isprintable():
        assert cleaned is note  # nothing to clean (as in every parsed note): not even a copy


def whole_documents(channel, items, settings):
    """The Atom and RSS documents as feedgen writes them with their items, not spliced."""
    made = feed._feedgen

    def with_items(channel, updated, settings):
        fg = made(channel, updated, settings)
        extension, paper_link = feed.import_feedgen()[1:]
        fg.register_extension("paper", extension, paper_link, atom=True, rss=False)
        for item in items:
            feed._add_entry(fg, item)
            if channel.summaries:  # feedgen has no call that unsets an entry's content
                entry = fg.entry()[-1]
                entry._FeedEntry__atom_content = entry._FeedEntry__rss_content = None
        return fg

    with (
        mock.patch.object(feed, "_feedgen", with_items),
        mock.patch.object(feed, "_splice", lambda document, end, items: document),
    ):
        newest = max((item.updated for item in items), default=None)
        return render_feed(channel, [], newest, settings)[:2]


def _json_items(items, lang, summaries):
    found = [json.loads(json.dumps(feed._json_item(i, lang))) for i in items]
    for fields in found if summaries else []:  # the summary as the content
        del fields["content_html"]
        fields["content_text"] = fields["summary"]
    return found


def test_an_item_whose_template_wrote_nothing_is_still_summarised():
    """A templates folder may render an item's HTML empty: feedgen then writes the summary as
    Atom content; the tag archive's documents still parse, without content."""
    archive = load_archive(SEEDS).archive
    digest = archive.digests[0]
    env = make_environment(None)
    item = note_item(FeedEntry(digest.ref, 0, digest.notes[0], None), "en", site().site, env)
    channel = note_channel("en", "tag", Page(2, 1, 3), site().site)
    empty = dataclasses.replace(item, content_html="")
    for path, data in render_feed(channel, render_items([empty], "en"), item.updated, site().site):
        parsed = read_feed(Path(path), data)
        assert parsed.bozo == 0 and "content" not in parsed.entries[0], path
        assert parsed.entries[0].summary


@pytest.mark.parametrize("archive_items", ["summary", "full"])
def test_items_spliced_into_a_document_are_what_feedgen_writes_for_the_whole(archive_items):
    """Each note's item is rendered once and spliced into every document that lists it: the
    bytes must be those feedgen writes for the whole document, in every kind of document
    (tag feeds' archives: without the items' content, unless tag_archive_items is "full")."""
    archive = load_archive(SEEDS).archive
    env = make_environment(None)
    entries = [FeedEntry(d.ref, i, n, None) for d in archive.digests for i, n in enumerate(d.notes)]
    assert len(entries) > 5
    settings = site(tag_archive_items=archive_items).site
    for lang in LANGS:
        items = [note_item(e, lang, settings, env) for e in entries]
        for tag, page in [(t, p) for t in ("tag", None) for p in (Page(), Page(2, 1, 3))]:
            channel = note_channel(lang, tag, page, settings)
            summaries = tag is not None and page.number is not None and archive_items == "summary"
            assert channel.summaries == summaries
            newest = max(i.updated for i in items)
            spliced = render_feed(channel, render_items(items, lang), newest, settings)
            assert spliced[:2] == whole_documents(channel, items, settings)
            assert [b"<content" in data for _, data in spliced[:2]] == [not summaries] * 2
            assert json.loads(spliced[2][1])["items"] == _json_items(items, lang, summaries)
        empty = render_feed(note_channel(lang, None, Page(), site().site), [], None, site().site)
        for path, data in empty[:2]:
            assert read_feed(Path(path), data).bozo == 0


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(title=HOSTILE, author=HOSTILE, paragraph=HOSTILE, abstract=HOSTILE)
def test_hostile_text_yields_well_formed_feeds(title, author, paragraph, abstract):
    from datetime import date

    note = Note(title, "n", 2, (author,), (abstract,), (paragraph + " 한",), (paragraph,), ("tag",))
    archive = Archive((Digest("2024-11-07", date(2024, 11, 7), None, "x.txt", (note,)),))
    env = make_environment(None)
    entries = [FeedEntry(archive.digests[0].ref, 0, note, None)]
    outputs = {OPML_PATH: render_opml(["tag"], site().site)}
    for lang in LANGS:
        # The tag's archive document: its items as summaries (feed.summarised).
        for tag, page in [(None, Page()), ("tag", Page()), ("tag", Page(2, 1, 3))]:
            channel = note_channel(lang, tag, page, site().site)
            items = [note_item(e, lang, site().site, env) for e in entries]
            spliced = render_feed(channel, render_items(items, lang), items[0].updated, site().site)
            assert spliced[:2] == whole_documents(channel, items, site().site)
            outputs.update(spliced)
    for path, data in outputs.items():
        if path.endswith(".opml"):
            ElementTree.fromstring(data)
            continue
        parsed = read_feed(Path(path), data)
        assert parsed.bozo == 0, (path, parsed.get("bozo_exception"))
        assert parsed.entries[0].title.strip() == clean_text(title).strip()
        if "/feeds/" in path:  # a tag's archive: no content
            assert "content" not in parsed.entries[0]
            continue
        # The item's HTML as published (before any reader sanitises it) carries text, never tags.
        content = raw_content_html(path, data)
        assert "<script" not in content
        if "<script>" in clean_text(paragraph):
            assert "&lt;script&gt;" in content
