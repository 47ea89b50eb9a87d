"""dist/ replaced in one step: with the system's atomic exchange, or by two renames where there
is none; one build at a time per output folder, whatever cache each uses."""

from __future__ import annotations

import hashlib
import multiprocessing
import shutil
import time
from pathlib import Path

import pytest

from feeds.build import build
from feeds.cache import BuildRecord, Cache, Output
from feeds.config import make_settings
from feeds.locks import Busy, locked
from feeds.pool import Pool
from feeds.publish import Dist
from feeds.trees import exchange_folders, no_exchange

from .conftest import SEEDS


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def publish(out: Path, cache: Cache, content: dict[str, bytes], exchange) -> None:
    outputs = {
        path: Output(path, cache.objects.put(data), len(data)) for path, data in content.items()
    }
    with Dist.open(out, exchange) as dist, Pool(1) as pool, dist.staging(cache, pool) as staging:
        written, _ = staging.publish(outputs, cache.objects)
    cache.save_record(out, BuildRecord.of("x", written, ()))


@pytest.mark.parametrize("exchange", [exchange_folders, no_exchange], ids=["exchange", "renames"])
def test_publishing_replaces_the_tree_with_or_without_an_atomic_exchange(tmp_path, exchange):
    cache, out = Cache(tmp_path / "cache"), tmp_path / "dist"
    first = {"index.html": b"one", "a/b.html": b"two", "gone.txt": b"old"}
    publish(out, cache, first, exchange)
    assert files(out) == first
    second = {"index.html": b"one", "a/b.html": b"TWO", "a/c/new.html": b"new"}
    inode = (out / "index.html").stat().st_ino
    publish(out, cache, second, exchange)
    assert files(out) == second
    assert (out / "index.html").stat().st_ino == inode  # unchanged bytes: the same file
    assert {p.name for p in tmp_path.glob(".dist*")} == {".dist.spare", ".dist.lock"}


def test_a_build_killed_between_the_two_renames_is_finished_by_the_next(tmp_path):
    """Without an atomic exchange, OUT is moved aside, then the new tree moved in: killed in
    between, there is no OUT and a `.OUT.old-PID`. The next build puts it back first."""
    src = tmp_path / "seeds"
    shutil.copytree(SEEDS, src)
    settings = make_settings(base_url="https://example.org/", cache_dir=str(tmp_path / "cache"))
    build(src, tmp_path / "dist", settings)
    before = files(tmp_path / "dist")
    (tmp_path / "dist").rename(tmp_path / ".dist.old-4242")
    (tmp_path / ".dist.staging-4242").mkdir()  # the half-made tree it was about to move in
    report = build(src, tmp_path / "dist", settings)
    assert files(tmp_path / "dist") == before
    assert report.written == []  # put back as it was: nothing to write
    assert {p.name for p in tmp_path.glob(".dist*")} <= {".dist.spare", ".dist.lock"}


def _hold(path: str, ready, release) -> None:
    with locked(Path(path), "the test folder"):
        ready.set()
        release.wait(30)


def test_a_lock_held_elsewhere_is_named_or_waited_for(tmp_path):
    lock = tmp_path / ".dist.lock"
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(str(lock), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(Busy) as raised, locked(lock, "the output folder dist", wait=False):
            pass
        assert str(raised.value) == (
            f"the output folder dist is in use by another process (pid {holder.pid})"
        )
        started = time.monotonic()
        release.set()
        with locked(lock, "the output folder dist"):  # waits for the holder to let go
            assert time.monotonic() - started < 30
    finally:
        release.set()
        holder.join(30)


def _build(src: str, out: str, cache: str) -> None:
    build(Path(src), Path(out), make_settings(base_url="https://example.org/", cache_dir=cache))


@pytest.mark.slow
def test_two_builds_into_one_dist_with_different_caches_take_turns(tmp_path):
    src = tmp_path / "seeds"
    shutil.copytree(SEEDS, src)
    _build(str(src), str(tmp_path / "reference"), str(tmp_path / "cache-ref"))
    expected = files(tmp_path / "reference")
    for round_ in range(3):
        builds = [
            multiprocessing.Process(
                target=_build, args=(str(src), str(tmp_path / "dist"), str(tmp_path / f"c{n}"))
            )
            for n in range(2)
        ]
        for process in builds:
            process.start()
        for process in builds:
            process.join(120)
        assert [p.exitcode for p in builds] == [0, 0], round_
        assert files(tmp_path / "dist") == expected
        assert {p.name for p in tmp_path.glob(".dist*")} <= {".dist.spare", ".dist.lock"}


def test_a_damaged_cache_object_is_rendered_again_not_published(tmp_path):
    src = tmp_path / "seeds"
    shutil.copytree(SEEDS, src)
    settings = make_settings(base_url="https://example.org/", cache_dir=str(tmp_path / "cache"))
    build(src, tmp_path / "one", settings)
    expected = files(tmp_path / "one")
    objects = {p.name: p for p in (tmp_path / "cache" / "objects").rglob("*") if p.is_file()}
    page = (tmp_path / "one" / "ko" / "2024-11-07" / "index.html").read_bytes()
    victim = objects[hashlib.sha256(page).hexdigest()]
    victim.unlink()  # not the file dist/ links to: the object alone, damaged
    victim.write_bytes(page.replace(b"<h1>", b"<h1>damaged", 1))
    report = build(src, tmp_path / "two", settings)
    assert report.rendered == 1  # the digest's job, whose object no longer hashes to its name
    assert files(tmp_path / "two") == expected
