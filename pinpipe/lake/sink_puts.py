"""Ordered background puts: the lake sink's objects written on one thread, in the order they were cut.

One thread (not a pool) on purpose: a partition's objects must land in offset order so that a crash
leaves a prefix of them, which is what the sink's recovery from the lake relies on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from pinpipe.lake.store import ObjectStore


class OrderedPuts:
    """Puts objects into the store in submission order, on one thread (or inline when ``depth`` is 0).

    ``done`` runs after an object is durably written; after a failure nothing later is written and the
    error is raised in the caller's thread by the next :meth:`submit`, :meth:`check` or :meth:`drain`.
    """

    def __init__(self, store: ObjectStore, depth: int) -> None:
        self._store = store
        self._error: BaseException | None = None
        self._queue: queue.Queue[tuple[str, bytes, Callable[[], None]] | None] | None = None
        if depth > 0:
            self._queue = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(target=self._run, name="lake-sink-puts", daemon=True)
            self._thread.start()

    def submit(self, key: str, data: bytes, done: Callable[[], None]) -> None:
        self.check()
        if self._queue is None:
            self._store.put(key, data)
            done()
        else:
            self._queue.put((key, data, done))

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def drain(self) -> None:
        if self._queue is not None:
            self._queue.join()
        self.check()

    def close(self) -> None:
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None

    def _run(self) -> None:
        assert self._queue is not None
        while (item := self._queue.get()) is not None:
            key, data, done = item
            if self._error is None:
                try:
                    self._store.put(key, data)
                    done()
                except BaseException as exc:  # handed to the sink's thread
                    self._error = exc
            self._queue.task_done()
        self._queue.task_done()
