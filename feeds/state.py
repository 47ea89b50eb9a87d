"""What readers were shown before, kept beside the digests: each note's slug and when it changed.

A small JSON file beside the digests (`.feeds-state.json`, meant to be committed with them)
records, per note, the slug it was first published with (so its id and permalink survive an
edit of its title) and a hash of each of its parts. When what a language's readers see of a
note changes, the note is marked updated in that language at one second past the later of
the newest note time in the archive and its previous update: a time derived from the content,
so the same input and state always give the same output, while a feed reader sees the edit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from json.encoder import encode_basestring
from types import MappingProxyType
from typing import Any, NamedTuple

from .model import LANGS, Archive, DigestHead, Lang, Note, NoteHead
from .parse import slugify

STATE_FILE = ".feeds-state.json"
_VERSION = 2
_PARTS = ("title", "authors", "abstract", "tags", "ko", "en")


def _part(value: object) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False).encode()).hexdigest()[:12]


_NONE = _part([])

_NEVER: Mapping[Lang, str | None] = MappingProxyType(dict.fromkeys(LANGS))
"""The update times of a note never updated in either language: one, read-only, for all."""

StateNote = tuple[str, Mapping[Lang, str | None]]
"""A note as the state file records it: its parts (note_hash) and update time per language."""


def note_hash(note: Note) -> str:
    """The note's content, part by part: a hash each of its title, authors, abstract, tags,
    Korean and English commentary, joined by "."."""
    values = (note.title, note.authors, note.abstract, note.tags, note.korean, note.english)
    return ".".join(_part(list(v) if isinstance(v, tuple) else v) for v in values)


def retagged(head: NoteHead, tags: tuple[str, ...]) -> NoteHead:
    """The note's head with other tags, and its hash with them (note_hash's fourth part)."""
    parts = head.hash.split(".")
    parts[3] = _part(list(tags))
    return replace(head, tags=tags, hash=".".join(parts))


def shown_hash(parts: str, lang: Lang) -> str:
    """What readers of `lang` see of a note (its commentary, or the other language's when it
    has none in theirs), from note_hash."""
    title, authors, abstract, tags, ko, en = parts.split(".")
    own, other = (ko, en) if lang == "ko" else (en, ko)
    shown = own if own != _NONE or other == _NONE else f"other:{other}"
    return _part([title, authors, abstract, tags, shown])


def v1_hash(note: Note) -> str:
    """The one hash per note of version 1 of the state file (to read older files)."""
    content = [note.title, note.authors, note.abstract, note.korean, note.english, note.tags]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()[:20]


def note_key(digest: DigestHead, note: NoteHead) -> str:
    return f"{digest.id}#{note.slug}"


class Known(NamedTuple):
    """A note as the state file recorded it (a NamedTuple, quicker to make than a frozen
    dataclass: a build makes one for every note of the archive)."""

    slug: str
    parts: str  # note_hash; "" for a file of version 1
    v1: str  # version 1's hash ("" otherwise)
    updated: Mapping[Lang, str | None]  # _NEVER, shared, for a note never updated (most)

    def score(self, parts: str) -> int:
        """How surely a note with these parts is this one after an edit of its title."""
        if not self.parts:
            return 0
        mine, theirs = self.parts.split("."), parts.split(".")
        weights = {"authors": 2, "abstract": 3, "tags": 1, "ko": 2, "en": 2}
        return sum(
            w
            for i, (name, w) in enumerate((p, weights.get(p, 0)) for p in _PARTS)
            if name != "title" and mine[i] == theirs[i] and mine[i] != _NONE
        )


def _stamp(value: object) -> str | None:
    """A recorded update time, if it is one (ISO 8601 with its offset): a damaged one, edited
    by hand or merged wrongly, counts as none, as a state file that cannot be read does."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    # In year 9999 a later edit's time (a second past it) would not exist.
    return value if when.tzinfo is not None and when.year < datetime.max.year else None


def _recorded_parts(value: object) -> str:
    """A note's recorded parts (note_hash), if they are that: damaged ones count as unknown
    (""), as in a state file of version 1, so the note is recorded again, not marked edited."""
    if isinstance(value, str) and value.count(".") == len(_PARTS) - 1:
        return value
    return ""


def _known(previous: dict[str, Any] | None) -> dict[str, dict[str, Known]]:
    """Per digest id, its notes by slug, from a state file of either version."""
    found: dict[str, dict[str, Known]] = {}
    if not isinstance(previous, dict) or previous.get("version") not in (1, _VERSION):
        return found
    notes = previous.get("notes")
    for key, value in notes.items() if isinstance(notes, dict) else ():
        digest_id, _, slug = str(key).partition("#")
        if not isinstance(value, dict) or not slug:
            continue
        if previous["version"] == 1:
            when = _stamp(value.get("updated"))
            updated = _NEVER if when is None else dict.fromkeys(LANGS, when)
            known = Known(slug, "", str(value.get("hash", "")), updated)
        else:
            raw, updated = value.get("updated"), _NEVER
            if isinstance(raw, dict) and raw != _NEVER:  # _NEVER as recorded: most notes
                stamps = {lang: _stamp(raw.get(lang)) for lang in LANGS}
                updated = stamps if any(stamps.values()) else _NEVER
            known = Known(slug, _recorded_parts(value.get("parts")), "", updated)
        found.setdefault(digest_id, {})[slug] = known
    return found


def _match(
    notes: tuple[NoteHead, ...], v1s: tuple[str, ...] | None, known: dict[str, Known]
) -> list[Known | None]:
    """The recorded note each note is, if any: with the same parts; else with the slug of its
    title; else, its title edited, the one that shares the most of the rest. `v1s`: each
    note's version 1 hash, where the state file has them."""
    parts = [n.hash for n in notes]
    if len(known) == len(notes) == len(set(parts)) and all(
        (k := known.get(n.slug)) is not None and k.parts == p
        for n, p in zip(notes, parts, strict=True)
    ):
        return [known[n.slug] for n in notes]  # as recorded (most digests, most builds)
    left = dict(known)
    found: list[Known | None] = [None] * len(notes)
    if not left:
        return found
    by_content: dict[str, list[str]] = {}
    for slug, k in left.items():
        by_content.setdefault(k.parts or f"v1:{k.v1}", []).append(slug)
    for i in range(len(notes)):
        for content in (parts[i], f"v1:{v1s[i]}" if v1s is not None else ""):
            same = [s for s in by_content.get(content, ()) if s in left]
            if same and found[i] is None:
                found[i] = left.pop(same[0])
    for i, note in enumerate(notes):
        if found[i] is None and note.slug in left:
            found[i] = left.pop(note.slug)
    unmatched = [i for i, k in enumerate(found) if k is None]
    if len(unmatched) * len(left) <= 40_000:  # an edited title, among a digest's few notes
        for i in unmatched:
            best = max(left.values(), key=lambda k: k.score(parts[i]), default=None)
            if best is not None and best.score(parts[i]) >= 3:
                found[i] = left.pop(best.slug)
    return found


@dataclass(frozen=True)
class Updates:
    """Per note key and language, when it was last updated; the state to record for next time;
    and what changed in it since the state file was written."""

    updated: dict[tuple[str, Lang], datetime]
    state: dict[str, StateNote]  # by note key, sorted: what dump_state writes
    new: int = 0
    edited: int = 0

    def of(self, digest: DigestHead, note: NoteHead, lang: Lang) -> datetime | None:
        return self.of_key(note_key(digest, note), lang)

    def of_key(self, key: str, lang: Lang) -> datetime | None:
        """As `of`, for a note by its note_key (made once where a note is looked up per language)."""
        return self.updated.get((key, lang))


def _unique(base: str, taken: set[str]) -> str:
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


V1Hashes = Callable[[DigestHead], tuple[str, ...]]
"""A digest's notes' version 1 hashes (v1_hash), from their text: only for a state file of
version 1."""


def stable_slugs(
    archive: Archive[DigestHead], previous: dict[str, Any] | None, v1_of: V1Hashes
) -> tuple[Archive[DigestHead], list[tuple[list[Known | None], tuple[str, ...] | None]]]:
    """The archive with every note under the slug it was first published with (a new note
    under its title's), and for each note what the state file knew of it (with the version 1
    hashes of a digest the state file knew so)."""
    known = _known(previous)
    digests, matched = [], []
    for digest in archive.digests:
        notes, recorded = digest.notes, known.get(digest.id, {})
        v1s = v1_of(digest) if any(k.v1 for k in recorded.values()) else None
        found = _match(notes, v1s, recorded)
        taken = {k.slug for k in found if k is not None}
        slugs = []
        for note, k in zip(notes, found, strict=True):
            if k is not None:
                slugs.append(k.slug)
            else:
                slug = _unique(note.slug if note.slug not in taken else slugify(note.title), taken)
                taken.add(slug)
                slugs.append(slug)
        if any(n.slug != s for n, s in zip(notes, slugs, strict=True)):
            notes = tuple(replace(n, slug=s) for n, s in zip(notes, slugs, strict=True))
            digest = replace(digest, notes=notes)
        digests.append(digest)
        matched.append((found, v1s))
    return Archive(tuple(digests)), matched


def resolve_updates(
    archive: Archive[DigestHead], previous: dict[str, Any] | None, tz: tzinfo, v1_of: V1Hashes
) -> tuple[Archive[DigestHead], Updates]:
    """Give notes their stable slugs, compare them with what the state recorded, and date what
    readers of each language see changed."""
    archive, matched = stable_slugs(archive, previous, v1_of)
    newest = max((d.note_published(0, tz) for d in archive.digests if d.notes), default=None)
    updated: dict[tuple[str, Lang], datetime] = {}
    notes: dict[str, StateNote] = {}
    new = edited = 0
    for digest, (found, v1s) in zip(archive.digests, matched, strict=True):
        for index, (note, old) in enumerate(zip(digest.notes, found, strict=True)):
            key, parts = note_key(digest, note), note.hash
            if old is not None and old.parts == parts:  # as recorded (most notes, most builds)
                for lang, stamp in old.updated.items():
                    if stamp:
                        updated[(key, lang)] = datetime.fromisoformat(stamp)
                notes[key] = (parts, old.updated)
                continue
            new += old is None
            v1_changed = bool(old and old.v1 and v1s is not None and old.v1 != v1s[index])
            edited += old is not None and bool((old.parts and old.parts != parts) or v1_changed)
            when: dict[Lang, str | None] = {}
            for lang in LANGS:
                stamp = old.updated.get(lang) if old is not None else None
                changed = old is not None and (
                    v1_changed
                    or bool(
                        old.parts
                        and old.parts != parts
                        and shown_hash(old.parts, lang) != shown_hash(parts, lang)
                    )
                )
                if changed and newest is not None:
                    base = max(
                        newest,
                        datetime.fromisoformat(stamp)
                        if stamp
                        else digest.note_published(index, tz),
                    )
                    stamp = (base + timedelta(seconds=1)).isoformat()
                if stamp:
                    updated[(key, lang)] = datetime.fromisoformat(stamp)
                when[lang] = stamp
            notes[key] = (parts, when if any(when.values()) else _NEVER)
    return archive, Updates(updated, dict(sorted(notes.items())), new, edited)


def dump_state(notes: dict[str, StateNote]) -> bytes:
    """The state file of these notes (Updates.state): JSON with one note per line, so that an
    edit shows as a one-line diff."""
    string = encode_basestring  # what json.dumps(ensure_ascii=False) writes for a str, in C

    def stamp(value: str | None) -> str:
        return "null" if value is None else string(value)

    never = '{"ko": null, "en": null}'

    def line(key: str, parts: str, when: Mapping[Lang, str | None]) -> str:
        shown = (
            never if when is _NEVER else f'{{"ko": {stamp(when["ko"])}, "en": {stamp(when["en"])}}}'
        )
        return f'{string(key)}: {{"parts": {string(parts)}, "updated": {shown}}}'

    lines = ",\n".join(line(key, parts, when) for key, (parts, when) in notes.items())
    return f'{{"version": {_VERSION:d}, "notes": {{\n{lines}\n}}}}\n'.encode()


def parse_state(data: bytes | None) -> dict[str, Any] | None:
    """The recorded state, or None when there is none or it cannot be read (all notes count as new)."""
    if not data:
        return None
    try:
        state = json.loads(data)
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def changes(updates: Updates) -> Iterator[str]:
    """What a build changed in the state file, said in a few words."""
    if updates.new:
        yield f"{updates.new} new notes"
    if updates.edited:
        yield f"{updates.edited} edited"
