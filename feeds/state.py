"""When a note was last changed, without a clock.

A small JSON file beside the digests (`.feeds-state.json`, meant to be committed
with them) records a hash of every note. When a note's hash differs from the
recorded one, the note is marked updated at one second past the later of the
newest note time in the archive and its previous update: a time derived from
the content, so the same input and state always give the same output, while a
feed reader sees the edit as an update.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from json.encoder import encode_basestring
from typing import Any

from .model import Archive, Digest, Note

STATE_FILE = ".feeds-state.json"
_VERSION = 1


def note_key(digest: Digest, note: Note) -> str:
    return f"{digest.id}#{note.slug}"


def note_hash(note: Note) -> str:
    content = [note.title, note.authors, note.abstract, note.korean, note.english, note.tags]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Updates:
    """Per note key, when it was last updated; and the state to record for next time."""

    updated: dict[str, datetime]
    state: dict[str, Any]

    def of(self, digest: Digest, note: Note) -> datetime | None:
        return self.updated.get(note_key(digest, note))


def resolve_updates(
    archive: Archive,
    previous: dict[str, Any] | None,
    tz: tzinfo,
    hash_of: Callable[[Note], str] = note_hash,
) -> Updates:
    """Compare notes with the recorded hashes and date the ones that changed.

    `hash_of` is note_hash, or a function that remembers its results.
    """
    old_notes = (
        (previous or {}).get("notes", {}) if (previous or {}).get("version") == _VERSION else {}
    )
    newest = max((d.note_published(0, tz) for d in archive.digests if d.notes), default=None)
    updated: dict[str, datetime] = {}
    notes: dict[str, dict[str, str | None]] = {}
    for digest in archive.digests:
        for index, note in enumerate(digest.notes):
            key, digest_hash = note_key(digest, note), hash_of(note)
            old = old_notes.get(key)
            when: datetime | None = None
            if old is not None and old.get("updated"):
                when = datetime.fromisoformat(old["updated"])
            if old is not None and old.get("hash") != digest_hash and newest is not None:
                base = max(newest, when or digest.note_published(index, tz))
                when = base + timedelta(seconds=1)
            if when is not None:
                updated[key] = when
            notes[key] = {"hash": digest_hash, "updated": when.isoformat() if when else None}
    return Updates(updated, {"version": _VERSION, "notes": dict(sorted(notes.items()))})


def dump_state(state: dict[str, Any]) -> bytes:
    """The state as JSON with one note per line, so an edit shows as a one-line diff."""
    string = encode_basestring  # what json.dumps(ensure_ascii=False) writes for a str, in C

    def line(key: str, value: dict[str, str | None]) -> str:
        updated = value["updated"]
        when = "null" if updated is None else string(updated)
        return f'{string(key)}: {{"hash": {string(value["hash"] or "")}, "updated": {when}}}'

    notes = ",\n".join(line(key, value) for key, value in state["notes"].items())
    return f'{{"version": {state["version"]:d}, "notes": {{\n{notes}\n}}}}\n'.encode()


def parse_state(data: bytes | None) -> dict[str, Any] | None:
    """The recorded state, or None when there is none or it cannot be read (all notes count as new)."""
    if not data:
        return None
    try:
        state = json.loads(data)
    except ValueError:
        return None
    return state if isinstance(state, dict) else None
