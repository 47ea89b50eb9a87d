"""dist/ replaced in one step: with the system's atomic exchange, or by two renames where there
is none; one build at a time per output folder, whatever cache each uses."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
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


def seeds_site(tmp_path: Path) -> tuple[Path, object]:
    src = tmp_path / "seeds"
    shutil.copytree(SEEDS, src)
    return src, make_settings(base_url="https://example.org/", cache_dir=str(tmp_path / "cache"))


def fresh_tree(tmp_path: Path, src: Path) -> dict[str, bytes]:
    settings = make_settings(
        base_url="https://example.org/", cache_dir=str(tmp_path / "fresh-cache")
    )
    build(src, tmp_path / "fresh", settings)
    return files(tmp_path / "fresh")


def test_a_same_size_edit_with_its_mtime_set_back_is_put_right(tmp_path):
    src, settings = seeds_site(tmp_path)
    build(src, tmp_path / "dist", settings)
    page = tmp_path / "dist" / "ko" / "2024-11-07" / "index.html"
    original, st = page.read_bytes(), page.stat()
    with open(page, "r+b") as file:  # in place: the same inode, the cache's object with it
        file.write(original[:50].swapcase())
    os.utime(page, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (page.stat().st_size, page.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    report = build(src, tmp_path / "dist", settings)
    assert report.written == ["ko/2024-11-07/index.html"] and page.read_bytes() == original


@pytest.mark.slow
def test_cache_objects_damaged_in_place_after_a_cold_build_never_go_out(tmp_path):
    """Objects are hard links with dist/: damaged in place (same size, mtime set back), dist/
    is damaged with them. The next real build must put every one right."""
    src, settings = seeds_site(tmp_path)
    build(src, tmp_path / "dist", settings)
    damaged = []
    objects = sorted(p for p in (tmp_path / "cache" / "objects").rglob("*") if p.is_file())
    for path in objects[::7]:
        st = path.stat()
        data = path.read_bytes()
        with open(path, "r+b") as file:
            file.write(bytes([data[0] ^ 1]))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        damaged.append(path)
    assert len(damaged) > 20
    (src / "2024-11-08.txt").write_text(
        (src / "2024-11-07.txt").read_text(encoding="utf-8").replace("11월 7일", "11월 8일", 1)
    )
    build(src, tmp_path / "dist", settings)
    assert files(tmp_path / "dist") == fresh_tree(tmp_path, src)


def test_stray_folders_and_changed_permissions_are_put_right(tmp_path):
    src, settings = seeds_site(tmp_path)
    build(src, tmp_path / "dist", settings)
    (tmp_path / "dist" / "stray" / "empty").mkdir(parents=True)
    feed = tmp_path / "dist" / "en" / "atom.xml"
    mode = feed.stat().st_mode
    feed.chmod(0o600)
    report = build(src, tmp_path / "dist", settings)
    assert not (tmp_path / "dist" / "stray").exists()
    assert feed.stat().st_mode == mode
    assert report.written == ["en/atom.xml"]
    assert build(src, tmp_path / "dist", settings).written == []
