"""All the parallel work of feeds behind one interface: `submit` a task, `map` a function.

With a count of 1 there are no processes: a task runs in this process when its result is
asked for. Otherwise a process pool runs tasks as they are submitted, batched so that a
build of thousands of tasks sends few messages while the first ones start at once.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BATCH_GROWTH = 32
"""Batches grow by one task every this many tasks, up to MAX_BATCH."""
MAX_BATCH = 8


def cpu_count() -> int:
    """The cores this process may use (all of them where the system cannot say)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


class Pending(Generic[R]):
    """The result of a submitted task, once it is asked for."""

    def __init__(self, get: Callable[[], R]):
        self._get = get
        self._done = False
        self._value: R | None = None

    def result(self) -> R:
        if not self._done:
            self._value = self._get()
            self._done = True
        return self._value  # type: ignore[return-value]


class _Batch:
    """Tasks sent to a worker together: one message each way instead of one per task."""

    def __init__(self) -> None:
        self.tasks: list[tuple[Callable[[Any], Any], Any]] = []
        self.sent: Any = None  # multiprocessing's AsyncResult once sent

    def send(self, pool: Any) -> None:
        if self.sent is None:
            self.sent = pool.apply_async(_run_batch, (self.tasks,))


def _run_batch(tasks: list[tuple[Callable[[Any], Any], Any]]) -> tuple[int, list[Any]]:
    return os.getpid(), [function(item) for function, item in tasks]


def _initialise(initializer: Callable[..., None] | None, args: tuple[Any, ...]) -> None:
    if initializer is not None:
        initializer(*args)


class Pool:
    """A process pool (count > 1) or this process (count 1), started when made.

    Where the system allows and no other thread runs, workers are forked: they start at
    once and small, when made before a build loads its archive. `initializer(*initargs)`
    runs once in each worker (and in this process before its first task, with count 1).
    Closing first collects every task already submitted, so any Pending can be read after.
    """

    def __init__(
        self,
        count: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
    ):
        self.count = max(1, count)
        self._initializer = initializer
        self._initargs = initargs
        self._pool: Any = None
        self._batch = _Batch()
        self._sent: list[_Batch] = []
        self._submitted = 0
        self._pids: set[int] = set()
        self._ran_here = False
        if self.count > 1:
            alone = threading.active_count() == 1  # forking copies no lock another thread holds
            fork = alone and "fork" in multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if fork else "spawn")
            self._pool = context.Pool(self.count, _initialise, (initializer, initargs))

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        self.close(collect=kind is None)

    @property
    def used(self) -> int:
        """How many processes ran the tasks so far (1 when they ran here)."""
        return max(1, len(self._pids))

    def _here(self, function: Callable[[T], R], item: T) -> R:
        if not self._ran_here:
            _initialise(self._initializer, self._initargs)
            self._ran_here = True
        return function(item)

    def submit(self, function: Callable[[T], R], item: T) -> Pending[R]:
        """Start function(item) on a worker (here: when its result is asked for).

        function must be importable by name: a worker may have been started afresh.
        """
        self._submitted += 1
        if self._pool is None:
            return Pending(lambda: self._here(function, item))
        batch = self._batch
        batch.tasks.append((function, item))
        position = len(batch.tasks) - 1
        if len(batch.tasks) >= min(MAX_BATCH, 1 + self._submitted // BATCH_GROWTH):
            self.flush()
        return Pending(lambda: self._result(batch, position))

    def _result(self, batch: _Batch, position: int) -> Any:
        if self._pool is None and (batch.sent is None or not batch.sent.ready()):
            raise RuntimeError("the pool was closed before this task ended")
        if batch.sent is None:
            self.flush()
        pid, results = batch.sent.get()
        self._pids.add(pid)
        return results[position]

    def flush(self) -> None:
        """Send the tasks not sent yet."""
        if self._pool is not None and self._batch.tasks:
            self._batch.send(self._pool)
            self._sent.append(self._batch)
            self._batch = _Batch()

    def map(self, function: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """function over items, results in order; every task is submitted at once."""
        pending = [self.submit(function, item) for item in items]
        self.flush()
        return (p.result() for p in pending)

    def close(self, collect: bool = True) -> None:
        """End the workers, after collecting every submitted task's result (collect=False:
        at once, on an error, when nothing will be read)."""
        if self._pool is None:
            return
        if collect:
            self.flush()
            for batch in self._sent:
                batch.sent.wait()
                if batch.sent.successful():
                    self._pids.add(batch.sent.get()[0])
        for batch in self._sent:
            batch.tasks = []  # done: their Pending, if still held, needs only the results
        self._sent = []  # nor does the pool: what was sent goes when its Pending goes
        self._pool.terminate()
        self._pool.join()
        self._pool = None
