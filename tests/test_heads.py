"""A build plans from heads (notes without their text) and reads a digest's text again from
its file only where a job renders it: as the build planned it, or not at all."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from feeds.build import Build, build
from feeds.cache import Cache
from feeds.config import make_settings
from feeds.errors import FeedsError
from feeds.inputs import _parse_fresh, full_digest
from feeds.parse import parse_file
from feeds.state import note_hash, retagged, v1_hash

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def copy_seeds(tmp_path: Path) -> Path:
    src = tmp_path / "seeds"
    shutil.copytree(SEEDS, src, ignore=shutil.ignore_patterns(".feeds-state.json"))
    return src


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_job_reads_a_digest_again_as_the_build_planned_it(tmp_path):
    path = copy_seeds(tmp_path) / "2024-10-29.txt"
    _, parsed = _parse_fresh(path)
    head = parsed.digest
    parrots = head.notes[1]
    assert parrots.tags == ("moe",)
    # As planning leaves it: a stable slug from an earlier title, the archive's spelling of a tag.
    planned = replace(retagged(parrots, ("MoE",)), slug="mixture-of-parrots")
    heads = replace(head, notes=(head.notes[0], planned, *head.notes[2:]))

    full = full_digest(heads)

    assert [n.slug for n in full.notes] == [n.slug for n in heads.notes]
    assert full.notes[1].tags == ("MoE",)
    assert full.notes[1].english == parse_file(path).digest.notes[1].english  # the text, again
    assert note_hash(full.notes[1]) == planned.hash  # what its keys and the state were made of
    with pytest.raises(FeedsError, match="changed while the build ran"):
        full_digest(replace(heads, notes=(head.notes[0], replace(planned, title="Another"))))


def test_a_digest_edited_while_the_build_runs_stops_it_and_dist_stays(tmp_path, monkeypatch):
    src, dist = copy_seeds(tmp_path), tmp_path / "dist"
    settings = make_settings(
        base_url="https://example.org/", cache_dir=str(tmp_path / "cache"), workers=1
    )
    build(src, dist, settings)
    before = tree(dist)
    digest = src / "2024-10-29.txt"
    text = digest.read_text(encoding="utf-8")
    digest.write_text(text.replace("further progress", "more progress"), encoding="utf-8")
    keep = Build.keep

    def edited_after_planning(self, *args):  # with one worker, jobs render after this
        state = keep(self, *args)
        digest.write_text(text.replace("further progress", "other progress"), encoding="utf-8")
        return state

    monkeypatch.setattr(Build, "keep", edited_after_planning)
    with pytest.raises(FeedsError) as raised:
        build(src, dist, settings)
    assert [(p.source, p.message) for p in raised.value.problems] == [
        (str(digest), "the file changed while the build ran: build again")
    ]
    assert tree(dist) == before

    monkeypatch.setattr(Build, "keep", keep)
    build(src, dist, settings)  # as the error says: the edit is published
    page = (dist / "en" / "2024-10-29" / "index.html").read_text(encoding="utf-8")
    assert "other progress" in page and "further progress" not in page


def test_the_parse_cache_keeps_heads_per_code(tmp_path):
    path = copy_seeds(tmp_path) / "2024-11-07.txt"
    key, parsed = _parse_fresh(path)
    with Cache.open(tmp_path / "cache") as cache:
        cache.save_parsed({key: parsed}, "code-a")
    stored = b"".join(f.read_bytes() for f in (tmp_path / "cache" / "parsed").iterdir())
    commentary = parse_file(path).digest.notes[0].english[0]
    assert parsed.digest.notes[0].title.encode() in stored
    assert commentary.encode() not in stored  # heads only: the text stays in the digest file
    with Cache.open(tmp_path / "cache") as cache:
        assert cache.load_parsed("code-b") == {}  # parsed by other code: parsed again
        assert cache.load_parsed("code-a") == {key: parsed}


def test_a_state_file_of_version_1_is_read_through_the_notes_text(tmp_path):
    """Version 1 kept one hash of each whole note: a build, which holds no text, reads the
    digests again to compare with it. A note as recorded keeps its date; an edited one is
    dated anew."""
    src = copy_seeds(tmp_path)
    digest = parse_file(src / "2024-10-29.txt").digest
    stamp = "2024-11-01T00:00:00+09:00"
    notes = {
        f"{digest.id}#{note.slug}": {"hash": v1_hash(note), "updated": stamp}
        for note in digest.notes
    }
    (src / ".feeds-state.json").write_text(json.dumps({"version": 1, "notes": notes}))
    first, second = (f"{digest.id}#{note.slug}" for note in digest.notes[:2])
    path = src / "2024-10-29.txt"
    path.write_text(
        path.read_text(encoding="utf-8").replace("further progress", "more progress"),
        encoding="utf-8",
    )  # the second note, Mixture of Parrots
    settings = make_settings(base_url="https://example.org/", cache_dir=str(tmp_path / "cache"))

    report = build(src, tmp_path / "dist", settings)

    state = json.loads((src / ".feeds-state.json").read_text())
    assert state["version"] == 2
    assert state["notes"][first]["updated"] == {"ko": stamp, "en": stamp}  # as recorded
    assert state["notes"][second]["updated"]["en"] > stamp  # edited since: dated anew
    others = sum(len(parse_file(f).digest.notes) for f in src.glob("*.txt")) - len(digest.notes)
    assert report.state_changed == f"{others} new notes, 1 edited"  # the others: not recorded
