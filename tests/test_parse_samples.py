"""The three sample digests are the reference for the format."""

from __future__ import annotations

from pathlib import Path

from feeds.archive import load_archive
from feeds.model import digest_to_json


def load_seeds():
    return load_archive(Path("seeds"))


def notes_by_title(archive):
    return {n.title: n for d in archive.digests for n in d.notes}


def test_samples_match_golden_model(in_root, golden):
    archive, warnings, errors, _ = load_seeds()
    assert warnings == () and errors == ()
    golden("seeds.json", [digest_to_json(d) for d in archive.digests])


def test_samples_have_25_notes_newest_digest_first(in_root):
    archive = load_seeds().archive
    assert [(d.id, len(d.notes)) for d in archive.digests] == [
        ("2024-11-07", 5),
        ("2024-11-04-1", 10),
        ("2024-10-29", 10),
    ]
    assert archive.digests[1].part == 1
    assert archive.notes == 25


def test_two_paragraph_commentaries(in_root):
    notes = notes_by_title(load_seeds().archive)
    parrots = notes["Mixture of Parrots: Experts improve memorization more than reasoning"]
    assert len(parrots.korean) == 2 and len(parrots.english) == 2
    assert parrots.korean[1].startswith("임베딩 차원의 증가")
    assert parrots.english[1].startswith("If we could create a sparse model")
    formal = next(t for t in notes if t.startswith("Autoformalize Mathematical Statements"))
    assert len(notes[formal].korean) == 2 and len(notes[formal].english) == 2


def test_urls_stay_inside_commentary(in_root):
    notes = notes_by_title(load_seeds().archive)
    tk = notes["ThunderKittens: Simple, Fast, and Adorable AI Kernels"]
    url = "https://hazyresearch.stanford.edu/blog/2024-05-12-tk"
    assert url in tk.korean[0] and url in tk.english[0]
    assert tk.authors[-1] == "Christopher Ré"
    assert tk.tags == ("efficiency",)


def test_author_names_with_accents_and_initials(in_root):
    notes = notes_by_title(load_seeds().archive)
    mardini = notes["MarDini: Masked Autoregressive Diffusion for Video Generation at Scale"]
    assert "Juan C. Pérez" in mardini.authors
    assert mardini.tags == ("video-generation", "non-autoregressive", "diffusion")
    assert mardini.line == 16
