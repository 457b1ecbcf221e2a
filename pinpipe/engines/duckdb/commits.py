"""The DuckDB engine's Delta commits, made by background threads while DuckDB goes on.

A small incremental run spends as long in delta-rs (writing the ten outputs, committing parts, which
releases the GIL) as in DuckDB: one thread making the commits, in the order they were asked for, lets the
two overlap without changing what a kill leaves behind (the commits still happen one after the other, in
the same order; a failed one stops the rest). Commits whose order does not matter (each output replacing
its own table) are made a few at a time. Data handed over must be materialized (Arrow tables, files): a
DuckDB connection serves one thread at a time.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


UNORDERED = 3
"""Threads making the commits whose order does not matter."""


class Commits:
    """Commits queued in order (:meth:`submit`), made by one thread, or made a few at a time
    (``ordered=False``); :meth:`wait` for them all (it raises the first failure; the commits not begun
    before a failure are not made)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="pinpipe-commits")
        self._unordered = ThreadPoolExecutor(UNORDERED, thread_name_prefix="pinpipe-commits")
        self._pending: list[Future[None]] = []
        self._failed = False

    def submit(self, commit: Callable[..., Any], *args: Any, ordered: bool = True) -> None:
        """Queue ``commit(*args)``, run in the caller's context (``delta.shared_handles``): after the
        ordered commits queued before it, or with ``ordered=False`` at once, beside any other."""
        context = contextvars.copy_context()

        def run() -> None:
            if self._failed:
                return
            try:
                context.run(commit, *args)
            except BaseException:
                self._failed = True
                raise

        self._pending.append((self._pool if ordered else self._unordered).submit(run))

    def call(self, work: Callable[..., T], *args: Any) -> Future[T]:
        """``work(*args)`` run by the same thread ahead of the commits queued later, in the caller's
        context, its result or error in the future returned: to overlap work that releases the GIL
        (starting DuckDB) with the caller's."""
        return self._pool.submit(contextvars.copy_context().run, work, *args)

    def wait(self) -> None:
        """Block until every queued commit is made; raise the first that failed."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Make the queued commits (or skip them after a failure) and stop the threads."""
        self._pool.shutdown(wait=True)
        self._unordered.shutdown(wait=True)
