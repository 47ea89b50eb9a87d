"""One pool for all parallel work: the same results with workers or without, in order."""

from __future__ import annotations

import gc
import os

import pytest

from feeds.build import no_collections
from feeds.config import make_settings
from feeds.errors import ParseError
from feeds.pool import Pool, cpu_count
from feeds.renderer import RENDER_GC_THRESHOLD, start_renderer


def square(n: int) -> int:
    return n * n


def where(_: object) -> int:
    return os.getpid()


def fail(n: int) -> int:
    raise ParseError(f"bad {n}", "x.txt", n)


@pytest.mark.parametrize("count", [1, 2])
def test_map_and_submit_give_results_in_order(count):
    with Pool(count) as pool:
        pending = [pool.submit(square, n) for n in range(40)]
        mapped = list(pool.map(square, range(10)))
        assert [p.result() for p in pending] == [n * n for n in range(40)]
        assert mapped == [n * n for n in range(10)]


def test_with_one_worker_tasks_run_here():
    with Pool(1) as pool:
        assert set(pool.map(where, range(5))) == {os.getpid()}
        assert pool.used == 1


def test_with_two_workers_tasks_run_in_them():
    with Pool(2) as pool:
        pids = set(pool.map(where, range(64)))
        assert os.getpid() not in pids
    assert pool.used == len(pids) >= 1


def test_results_can_be_read_after_the_pool_closed():
    pool = Pool(2)
    pending = [pool.submit(square, n) for n in range(20)]  # some not even sent yet
    pool.close()
    assert [p.result() for p in pending] == [n * n for n in range(20)]


def test_an_error_in_a_worker_arrives_whole():
    with Pool(2) as pool, pytest.raises(ParseError) as raised:
        pool.submit(fail, 7).result()
    assert [(p.source, p.line, p.message) for p in raised.value.problems] == [("x.txt", 7, "bad 7")]


def test_cpu_count_is_at_least_one():
    assert cpu_count() >= 1


def collector(_: object) -> tuple[bool, int]:
    return gc.isenabled(), gc.get_threshold()[0]


@pytest.mark.parametrize("count", [1, 2])
def test_jobs_render_with_the_collector_on_and_a_build_leaves_it_as_it_was(tmp_path, count):
    # A build's process runs without the collector, but rendering makes cycles: the renderer
    # (in each worker, or in this process with one) collects them.
    before = gc.isenabled(), gc.get_threshold()
    site = make_settings(base_url="https://example.org/").site
    renderer = (site, None, tmp_path / "objects", tmp_path / "items.sqlite")
    with no_collections():
        assert not gc.isenabled()
        with Pool(count, start_renderer, renderer) as pool:
            assert pool.submit(collector, None).result() == (True, RENDER_GC_THRESHOLD)
    assert (gc.isenabled(), gc.get_threshold()) == before
