"""Where jobs render: one renderer per worker process (and in the build's process with one
worker), with the templates compiled, feedgen imported, and the digest files it read last.

Jobs carry digests as heads (feeds.model.DigestHead); the renderer reads a digest's text from
its file again when a job renders it, as the build planned it (feeds.inputs.full_digest).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Sequence
from pathlib import Path

from .cache import Entry, ObjectStore, Output
from .channels import FeedEntry, note_item
from .config import SiteSettings
from .errors import Problem
from .feed import import_feedgen, render_items
from .fragments import Fragment, ItemStore
from .inputs import as_planned, changed_meanwhile, full_digest, parse_again
from .jobs import Job, ListedEntry, Rendered
from .model import Digest, DigestHead, Lang
from .site import SiteRenderer
from .templating import make_environment

PARSED_KEPT = 64
"""Digest files a renderer keeps parsed (feeds.inputs.parse_again): a job's notes come from a
few neighbouring digests, and the next job's mostly from the same."""


class Renderer:
    """Runs jobs with one Jinja environment; writes their outputs into the object store."""

    def __init__(
        self,
        settings: SiteSettings,
        templates_dir: str | None,
        store: ObjectStore,
        items: ItemStore,
    ):
        self.settings = settings
        self.templates_dir = templates_dir
        self.store = store
        self.items = items
        self.env = make_environment(templates_dir)
        self.site = SiteRenderer(settings, self.env)
        self._parsed: dict[str, Digest] = {}  # by parse key, the last few digest files read

    def _parse(self, source: str, key: str) -> Digest:
        found = self._parsed.pop(key, None) or parse_again(source, key)
        self._parsed[key] = found  # the newest last: jobs come in the plan's order
        if len(self._parsed) > PARSED_KEPT:
            del self._parsed[next(iter(self._parsed))]
        return found

    def digest(self, head: DigestHead) -> Digest:
        """The digest of these heads with its text, as the build planned it (from its file)."""
        return full_digest(head, self._parse(head.source, head.key))

    def entry(self, listed: ListedEntry) -> FeedEntry:
        """The feed entry with its note's text, as the build planned it (from its file)."""
        notes = self._parse(listed.source, listed.key).notes
        if len(notes) != listed.digest.size:
            raise changed_meanwhile(listed.source)
        note = as_planned(notes[listed.index], listed.note, listed.source)
        return FeedEntry(listed.digest, listed.index, note, listed.updated)

    def items_of(
        self, lang: Lang, entries: Sequence[ListedEntry], keys: Sequence[str]
    ) -> list[Fragment]:
        """The entries' feed items: from the item store, the missing ones rendered (and kept)."""
        found = self.items.get_many(keys)
        missing = [
            (key, entry) for key, entry in zip(keys, entries, strict=True) if key not in found
        ]
        if missing:
            views = [
                note_item(self.entry(entry), lang, self.settings, self.env) for _, entry in missing
            ]
            made = dict(zip((key for key, _ in missing), render_items(views, lang), strict=True))
            self.items.put_many(made)
            found |= made
        return [found[key] for key in keys]

    def run(self, job: Job) -> Rendered:
        outputs, warnings, seconds = job.render(self)
        start = time.perf_counter()
        stored = tuple(Output(path, self.store.put(data), len(data)) for path, data in outputs)
        seconds["write"] = time.perf_counter() - start
        own = job.source
        kept = tuple(
            Problem(w.message, None if w.source == own else w.source, w.line, "warning")
            for w in warnings
        )
        return Rendered(Entry(stored, kept), seconds)


_RENDERER: Renderer | None = None

RENDER_GC_THRESHOLD = 20_000
"""Allocations between two young-generation collections where jobs render (Python's default:
700). Rendering makes cycles (template contexts), but few for all it allocates."""


def start_renderer(
    settings: SiteSettings, templates_dir: str | None, objects: Path, items: Path
) -> None:
    """In each worker (and, with one worker, in the build's process): the renderer `render`
    uses, with feedgen imported and the templates compiled while the build loads the archive."""
    global _RENDERER
    # The collector is on where jobs render, also in a build's process, which runs without.
    gc.set_threshold(RENDER_GC_THRESHOLD, *gc.get_threshold()[1:])
    gc.enable()
    _RENDERER = Renderer(settings, templates_dir, ObjectStore(objects), ItemStore(items))
    import_feedgen()  # here, not in the build's main process, which only plans
    for name in _RENDERER.env.list_templates(extensions=["html", "mjml", "txt", "xml"]):
        with contextlib.suppress(Exception):  # a broken one is reported by the job that uses it
            _RENDERER.env.get_template(name)


def render(job: Job) -> Rendered:
    """Render one job with this process's renderer (start_renderer)."""
    assert _RENDERER is not None, "start_renderer first"
    return _RENDERER.run(job)
