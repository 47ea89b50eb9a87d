"""Full-text search of the notes: Pagefind indexes of the digest pages, built into dist/.

Pagefind runs in the reader's browser on static index files; its binary (PyPI `pagefind[bin]`)
writes them from the pages. It cannot update an index, only write it again from every page,
so the digests are split into shards counted from the oldest (as tag pages are): full ones of
`search_shard_size` and of smaller tiers, and the newest digests (`shards`). A new digest
re-indexes a few dozen digests at most on most days, and the search page merges them.
Each shard is cached under a key of its pages' bytes and the binary's version.

Pagefind writes the same bytes for the same pages but one file, `pagefind-entry.json`, whose
languages come in the order of a hash map: it is rewritten with them sorted.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .cache import Cache, Output, sha256
from .errors import FeedsError
from .model import LANGS, DigestRef
from .urls import digest_page_path, search_bundle_path

PAGEFIND_TIMEOUT = 600
"""Seconds one shard may take to index (a shard of 400 digests, 800 pages: about 4 s)."""

ENTRY_FILE = "pagefind-entry.json"

_UNUSED = ("pagefind-component-ui", "pagefind-modular-ui", "pagefind-highlight")
"""Bundle files the search page does not load (Pagefind's other UIs): not published."""


SMALLEST_SHARD = 25
"""Digests in the smallest full shard: the tiers below `search_shard_size` go down by fours
to no fewer than this."""


def shard_tiers(size: int) -> list[int]:
    """The sizes of full shards, largest first: `size`, then a quarter of it while that holds
    SMALLEST_SHARD digests or more (400: 400, 100, 25)."""
    tiers = [size]
    while tiers[-1] // 4 >= SMALLEST_SHARD:
        tiers.append(tiers[-1] // 4)
    return tiers


def shards(refs: Sequence[DigestRef], size: int) -> list[list[DigestRef]]:
    """The digests (newest first) in search shards, shard 1 the oldest; `size` 0: one shard.

    From the oldest: full shards of `size`, then of each smaller tier (shard_tiers), then the
    rest, which always holds the newest digest: its page changes when the next digest comes
    (its link to it), and only the rest, no more than the smallest tier, is indexed again. When
    the rest fills a tier, it becomes a full shard; four full ones of a tier become one of
    the tier above, once in so many digests."""
    oldest_first = list(reversed(refs))
    if size <= 0:
        return [oldest_first] if refs else []
    settled = len(oldest_first) - 1  # the newest is never in a full shard
    found, start = [], 0
    for tier in shard_tiers(size):
        while settled - start >= tier:
            found.append(oldest_first[start : start + tier])
            start += tier
    if start < len(oldest_first):
        found.append(oldest_first[start:])
    return found


def pagefind_binary() -> Path:
    """The Pagefind binary: $PAGEFIND_BINARY_PATH, or the one PyPI's `pagefind[bin]` installs."""
    from pagefind.service import get_executable

    found = get_executable()
    if found is None or not os.access(found, os.X_OK):
        where = f" ({found})" if found else ""
        raise FeedsError(
            f"the search index needs Pagefind's binary, which was not found{where}: "
            "pip install 'pagefind[bin]' or set PAGEFIND_BINARY_PATH"
        )
    return Path(found)


class SearchIndexer:
    """Writes (or takes from the cache) the search shards of a build's digest pages."""

    def __init__(
        self, cache: Cache, base_path: str, present: Callable[[Output], bool], dist_root: str
    ):
        self.cache, self.base_path, self.present = cache, base_path.strip("/"), present
        self.dist_root = dist_root  # a page reused from dist/ may have no object in the cache
        self._binary: Path | None = None
        self._version: str | None = None
        self.indexed = 0  # shards Pagefind wrote in this build

    def outputs(
        self, refs: Sequence[DigestRef], size: int, pages: dict[str, Output]
    ) -> list[Output]:
        """Every file of every shard, under dist/pagefind/{n}/."""
        known = self.cache.load_search()
        kept: dict[str, tuple[Output, ...]] = {}
        found: list[Output] = []
        for number, shard in enumerate(shards(refs, size), 1):
            shard_pages = [pages[digest_page_path(lang, r.id)] for r in shard for lang in LANGS]
            key = self._key(number, shard_pages)
            files = known.get(key)
            if files is None or not all(
                self.present(o) or self.cache.objects.verified(o.sha) for o in files
            ):
                files = self._index(number, shard_pages)
                self.indexed += 1
            kept[key] = files
            found.extend(files)
        self.cache.save_search(kept)
        return found

    def _key(self, number: int, pages: list[Output]) -> str:
        parts = [self.version(), self.base_path, str(number)]
        parts += [f"{page.path} {page.sha}" for page in pages]
        return sha256("\n".join(parts).encode())

    def version(self) -> str:
        if self._version is None:
            self._version = self._run(["--version"], Path.cwd()).strip()
        return self._version

    def _index(self, number: int, pages: list[Output]) -> tuple[Output, ...]:
        folder = search_bundle_path(number)
        with tempfile.TemporaryDirectory(prefix="feeds-search-") as temporary:
            site, out = Path(temporary, "site"), Path(temporary, "out")
            root = site / self.base_path if self.base_path else site  # result URLs get the path
            for page in pages:  # copies: a link would change the ctime vouching for dist/'s
                data = self._page(page)
                target = root / page.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            self._run(["--site", str(site), "--output-path", str(out)], Path(temporary))
            files = []
            for path in sorted(out.rglob("*")):
                name = path.relative_to(out).as_posix()
                if not path.is_file() or name.startswith(_UNUSED):
                    continue
                data = path.read_bytes()
                if name == ENTRY_FILE:
                    data = _sorted_entry(data)
                files.append(Output(folder + name, self.cache.objects.put(data), len(data)))
        return tuple(files)

    def _page(self, page: Output) -> bytes:
        data = self.cache.objects.read_verified(page.sha)
        if data is None:
            try:
                data = Path(self.dist_root, page.path).read_bytes()
            except OSError:
                data = b""
            if sha256(data) != page.sha:
                raise FeedsError("neither the cache nor dist/ holds this page as built", page.path)
        return data

    def _run(self, arguments: list[str], cwd: Path) -> str:
        if self._binary is None:
            self._binary = pagefind_binary()
        command = [str(self._binary), *arguments]
        try:
            done = subprocess.run(
                command, cwd=cwd, capture_output=True, timeout=PAGEFIND_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise FeedsError(
                f"Pagefind did not finish the search index in {PAGEFIND_TIMEOUT} s", None
            ) from None
        except OSError as exc:
            raise FeedsError(f"Pagefind could not be run: {exc.strerror or exc}", None) from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
            last = " / ".join(said.splitlines()[-3:])[:300] or "no output"
            why = f"killed by signal {-done.returncode}" if done.returncode < 0 else "failed"
            raise FeedsError(f"Pagefind {why} writing the search index: {last}", None)
        return done.stdout.decode("utf-8", "replace")


def _sorted_entry(data: bytes) -> bytes:
    """pagefind-entry.json with its languages in a fixed order (Pagefind's follows a hash)."""
    entry = json.loads(data)
    entry["languages"] = dict(sorted(entry.get("languages", {}).items()))
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode()
