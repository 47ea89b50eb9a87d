"""One pool for all parallel work: the same results with workers or without, in order."""

from __future__ import annotations

import os

import pytest

from feeds.errors import ParseError
from feeds.pool import Pool, cpu_count


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
