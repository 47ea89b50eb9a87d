"""Every tolerance, warning and error of the digest format, with exact messages and exit codes."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from feeds.archive import load_archive
from feeds.cli import main
from feeds.errors import ParseError
from feeds.parse import parse_authors, parse_digest

NOTE = """LASER: Attention with Exponential Transformation
(Sai Surya Duvvuri, Inderjit S. Dhillon)
Transformers have had tremendous impact for several sequence related tasks.
Attention 확률이 대부분 0에 가깝기 때문에 발생하는 그래디언트의 감소를 해소.
This method addresses the issue of gradient reduction.
#transformer
"""
SECOND = """Number Cookbook: Number Understanding of Language Models
(Haotong Yang, Yi Hu)
Large language models (LLMs) can solve an increasing number of complex reasoning tasks.
9.11 > 9.9 같은 숫자와 관련된 LLM의 문제들.
The authors designed tasks to test numerical reasoning.
#llm #benchmark
"""
HEADER = "2024년 11월 7일\n"


def check(tmp_path: Path, files: dict[str, bytes | str], *args: str):
    folder = tmp_path / "digests"
    folder.mkdir(exist_ok=True)
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    result = CliRunner().invoke(main, ["check", str(folder), *args])
    return result, folder


def without_lines(digest):
    return [replace(note, line=0) for note in digest.notes]


def only(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line]


# -- tolerances -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda t: t.encode("utf-8"), id="plain"),
        pytest.param(lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"), id="bom"),
        pytest.param(lambda t: t.replace("\n", "\r\n").encode(), id="crlf"),
        pytest.param(lambda t: t.replace("\n", "\n\n  \n").encode(), id="blank-lines"),
        pytest.param(
            lambda t: "\n".join(f"  {line}\t " for line in t.split("\n")).encode(), id="spaces"
        ),
        pytest.param(lambda t: unicodedata.normalize("NFD", t).encode(), id="nfd"),
    ],
)
def test_tolerances_give_the_same_model(transform):
    text = HEADER + NOTE + SECOND
    expected = parse_digest(text, "d.txt")
    got = parse_digest(transform(text).decode("utf-8-sig"), "d.txt")
    assert without_lines(got.digest) == without_lines(expected.digest)
    assert got.warnings == expected.warnings == ()
    assert got.digest.notes[0].korean == (
        "Attention 확률이 대부분 0에 가깝기 때문에 발생하는 그래디언트의 감소를 해소.",
    )
    assert unicodedata.is_normalized("NFC", got.digest.notes[1].korean[0])


def test_bom_file_through_the_loader(tmp_path):
    result, _ = check(tmp_path, {"a.txt": b"\xef\xbb\xbf" + (HEADER + NOTE).encode()})
    assert result.exit_code == 0, result.output
    assert result.stdout == "1 digests, 1 notes, 1 tags; 0 errors, 0 warnings\n"


def test_tags_fold_case_but_keep_first_spelling(tmp_path):
    older = "2024년 11월 6일\n" + NOTE.replace("#transformer", "#Transformer #LLM")
    newer = HEADER + NOTE.replace("#transformer", "#TRANSFORMER #llm #Llm")
    check(tmp_path, {"a.txt": newer, "b.txt": older})
    archive = load_archive(tmp_path / "digests").archive
    assert archive.tags() == {"llm": "LLM", "transformer": "Transformer"}
    assert archive.digests[0].notes[0].tags == ("Transformer", "LLM")


def test_part_number_goes_into_the_id():
    parsed = parse_digest("2024년 11월 4일 (2)\n" + NOTE, "x.txt")
    assert (parsed.digest.id, parsed.digest.part) == ("2024-11-04-2", 2)


# -- warnings ---------------------------------------------------------------------------------


def test_missing_authors_line_warns(tmp_path):
    text = HEADER + NOTE.replace("(Sai Surya Duvvuri, Inderjit S. Dhillon)\n", "")
    result, folder = check(tmp_path, {"d.txt": text})
    assert result.exit_code == 0
    assert only(result) == [
        f'Warning: {folder}/d.txt:3: expected an authors line "(Name, Name, …)" after the title '
        '"LASER: Attention with Exponential Transformation", found "Transformers have had '
        'tremendous impact for several sequenc…"'
    ]


def test_missing_abstract_and_commentaries_warn(tmp_path):
    no_abstract = NOTE.replace(
        "Transformers have had tremendous impact for several sequence related tasks.\n", ""
    )
    no_english = SECOND.replace("The authors designed tasks to test numerical reasoning.\n", "")
    result, folder = check(tmp_path, {"d.txt": HEADER + no_abstract + no_english})
    assert result.exit_code == 0
    assert only(result) == [
        f'Warning: {folder}/d.txt:2: the note "LASER: Attention with Exponential Transformation" '
        "has no abstract",
        f'Warning: {folder}/d.txt:7: the note "Number Cookbook: Number Understanding of Language '
        'Models" has no English commentary',
    ]
    assert result.stdout.endswith("0 errors, 2 warnings\n")


def test_no_korean_commentary_warns_and_keeps_english():
    text = HEADER + NOTE.replace(
        "Attention 확률이 대부분 0에 가깝기 때문에 발생하는 그래디언트의 감소를 해소.\n", ""
    )
    parsed = parse_digest(text, "d.txt")
    assert [str(w) for w in parsed.warnings] == [
        'd.txt:2: the note "LASER: Attention with Exponential Transformation" has no Korean commentary'
    ]
    note = parsed.digest.notes[0]
    assert note.english == ("This method addresses the issue of gradient reduction.",)


def test_missing_tags_line_warns_when_next_note_is_recognisable(tmp_path):
    text = HEADER + NOTE.replace("#transformer\n", "") + SECOND
    result, folder = check(tmp_path, {"d.txt": text})
    assert result.exit_code == 0
    assert only(result) == [
        f'Warning: {folder}/d.txt:2: the note "LASER: Attention with Exponential Transformation" '
        'has no tags line: line 7 "Number Cookbook: Number Understanding of Language Models" starts '
        "the next note (an authors line follows it)"
    ]
    notes = load_archive(folder).archive.digests[0].notes
    assert [n.tags for n in notes] == [(), ("llm", "benchmark")]
    assert notes[0].english == ("This method addresses the issue of gradient reduction.",)


def test_repeated_title_gets_distinct_slug(tmp_path):
    result, folder = check(tmp_path, {"d.txt": HEADER + NOTE + NOTE})
    assert only(result) == [
        f'Warning: {folder}/d.txt:8: the title "LASER: Attention with Exponential Transformation" '
        "already appears at line 2; this note gets the anchor "
        "#laser-attention-with-exponential-transformation-2"
    ]
    slugs = [n.slug for n in load_archive(folder).archive.digests[0].notes]
    assert slugs == [
        "laser-attention-with-exponential-transformation",
        "laser-attention-with-exponential-transformation-2",
    ]


def test_strict_turns_warnings_into_errors(tmp_path):
    text = HEADER + NOTE + NOTE
    result, folder = check(tmp_path, {"d.txt": text}, "--strict")
    assert result.exit_code == 1
    assert only(result)[0].startswith(f"Error: {folder}/d.txt:8: the title")


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "",
            ':1: expected a date header "YYYY년 M월 D일" (optionally followed by a part number " (N)"), found an empty file',
        ),
        (
            "\n\nNovember 7, 2024\n" + NOTE,
            ':3: expected a date header "YYYY년 M월 D일" (optionally followed by a part number " (N)"), found "November 7, 2024"',
        ),
        ("2024년 2월 30일\n" + NOTE, ':1: "2024년 2월 30일" is not a date that exists'),
        ("2024년 11월 7일\n\n", ":1: the digest has no notes after its date header"),
        (
            HEADER + "#transformer\n" + NOTE,
            ':2: expected the title line of a note, found a tags line "#transformer" that belongs to no note',
        ),
        (
            HEADER + NOTE + "Stray line at the end\n",
            ':8: "Stray line at the end" cannot be placed in a note: expected a title line followed by an authors line "(Name, Name, …)", the abstract, the commentary and a tags line; it comes after the note "LASER: Attention with Exponential Transformation" (line 2)',
        ),
        (
            HEADER + NOTE.replace("#transformer", "#trans/former"),
            ':7: expected tags "#tag #tag", found "#trans/former": a tag is letters, digits, "-" and "_" after one "#"',
        ),
    ],
    ids=[
        "empty",
        "malformed-header",
        "impossible-date",
        "no-notes",
        "orphan-tags",
        "stray-text",
        "bad-tag",
    ],
)
def test_errors_name_file_and_line(tmp_path, content, message):
    result, folder = check(tmp_path, {"d.txt": content})
    assert result.exit_code == 1
    assert f"Error: {folder}/d.txt{message}" in only(result)
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_not_utf8_names_the_byte_offset(tmp_path):
    data = (HEADER + "Title\n").encode() + b"\xff\xfe broken\n"
    result, folder = check(tmp_path, {"d.txt": data})
    assert result.exit_code == 1
    assert only(result) == [
        f"Error: {folder}/d.txt:3: expected UTF-8 text, found the byte 0xff at byte offset 25"
    ]


def test_duplicate_digest_ids_name_both_files(tmp_path):
    result, folder = check(tmp_path, {"a.txt": HEADER + NOTE, "b.txt": HEADER + SECOND})
    assert result.exit_code == 1
    assert only(result) == [
        f"Error: {folder}/b.txt:1: the digest id 2024-11-07 is also the id of {folder}/a.txt: "
        "expected one file per date (and part)"
    ]


def test_every_problem_in_every_file_is_reported(tmp_path):
    result, _folder = check(
        tmp_path,
        {
            "a.txt": "2024년 13월 1일\n" + NOTE,
            "b.txt": HEADER + "#orphan\n" + NOTE + "Stray\n",
            "c.txt": "2024년 11월 8일\n" + NOTE + NOTE,
        },
    )
    assert result.exit_code == 1
    lines = only(result)
    assert [line.split(": ", 2)[1].split("/")[-1] for line in lines] == [
        "a.txt:1",
        "b.txt:2",
        "b.txt:9",
        "c.txt:8",
    ]
    assert lines[-1].startswith("Warning:") and all(x.startswith("Error:") for x in lines[:-1])
    assert result.stdout == "1 digests, 2 notes, 1 tags; 3 errors, 1 warnings\n"


def test_parse_error_carries_source_and_line():
    with pytest.raises(ParseError) as info:
        parse_digest("2024년 2월 30일\n" + NOTE, "seeds/x.txt")
    (problem,) = info.value.problems
    assert (problem.source, problem.line) == ("seeds/x.txt", 1)


def test_json_output_schema(tmp_path):
    import json

    result, _folder = check(tmp_path, {"d.txt": HEADER + NOTE + NOTE}, "--json")
    document = json.loads(result.stdout)
    assert set(document) == {"digests", "warnings", "errors"}
    (digest,) = document["digests"]
    assert set(digest) == {"id", "date", "part", "source", "notes"}
    assert set(digest["notes"][0]) == {
        "title",
        "slug",
        "line",
        "authors",
        "abstract",
        "commentary",
        "tags",
    }
    assert digest["notes"][0]["commentary"]["en"] == [
        "This method addresses the issue of gradient reduction."
    ]
    assert document["warnings"][0]["line"] == 8
    assert document["errors"] == []


def test_authors_line_that_almost_matches_is_rejected_without_backtracking():
    # A regex that could split spaces two ways took exponential time on this line.
    assert parse_authors("(" + "a , " * 2000 + "1)") is None
    assert parse_authors("(Juan C. Pérez, O'Neil, Smith-Jones , Ré)") == (
        "Juan C. Pérez",
        "O'Neil",
        "Smith-Jones",
        "Ré",
    )


@pytest.mark.slow
def test_check_on_many_files_reports_what_one_process_finds(tmp_path):
    # From PARALLEL_CHECK_FILES on, `feeds check` parses on every core and sends back only
    # counts and problems: they must be what the whole archive, read in one process, gives.
    from feeds.archive import PARALLEL_CHECK_FILES, read_archive, summarize_archive
    from feeds.corpus import generate

    paths = generate(tmp_path, PARALLEL_CHECK_FILES + 20)
    broken = paths[PARALLEL_CHECK_FILES - 10]  # in the second worker's share
    broken.write_text(broken.read_text(encoding="utf-8").replace("(", "[", 1), encoding="utf-8")
    (tmp_path / "copy.txt").write_bytes(paths[3].read_bytes())  # a duplicate id
    (tmp_path / "bad.txt").write_text("2024년 13월 1일\nTitle\n", encoding="utf-8")

    loaded = read_archive(tmp_path)
    parallel = summarize_archive(tmp_path, workers=2)
    assert parallel == summarize_archive(tmp_path, workers=1)
    assert (
        parallel.digests == len(loaded.archive.digests) == PARALLEL_CHECK_FILES + 20
    )  # not the copy
    assert parallel.notes == loaded.archive.notes
    assert parallel.tags == len(loaded.archive.tags())
    assert parallel.warnings == loaded.warnings and len(parallel.warnings) >= 1
    assert parallel.errors == loaded.errors and len(parallel.errors) == 3
    assert any(str(broken) == w.source for w in parallel.warnings)
