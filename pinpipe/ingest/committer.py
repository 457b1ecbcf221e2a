"""Appends from the event loop, committed by one thread in groups: no worker thread per request.

A request handed to the thread pool costs two thread hops (there and back) and holds a pool thread while
its commit waits for the disk. For a writer that can take several appends at once (``append_many``: the
embedded log's commits them in one transaction, one fsync; Kafka's shares their idempotency claims and
produce round trips), the API instead queues each append here from the event loop; one thread takes
everything queued since its last commit, hands it over in one call, and wakes the event loop once for the
whole group. Each append keeps its own result (all or nothing on the embedded log), and its future is
resolved only after the log acknowledged its records (the COMMIT, or every in-sync replica): an
acknowledged record is durable.

A result only a wait can decide (a :class:`~pinpipe.log.base.Later`: on Kafka, a call whose idempotency
claim another API process holds) is decided by a few threads apart (``WAITERS``), so that one call's wait
holds up neither the rest of its group nor the groups after it.

A writer may bring its own way of doing this (``loop_committer()``): the embedded log's writer process
is sent its groups and read by the event loop itself (:mod:`pinpipe.log.embedded.process`), since a
thread that runs SQLite waits for the event loop's GIL after every statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, runtime_checkable

from pinpipe.errors import LogError
from pinpipe.log.base import Later, Log, LogWriter, OutgoingRecord, resolve

Placed = list[tuple[int, int]]
_Pending = tuple[str, Sequence[OutgoingRecord], "asyncio.Future[Placed]"]
_Settled = tuple["asyncio.Future[Placed]", Placed | BaseException]
WAITERS = 4
"""Threads deciding :class:`Later` results, each waiting at most the claims' ``wait_s``: more waits than
that queue up behind each other, never in front of a group."""


@runtime_checkable
class GroupWriter(Protocol):
    """A log writer that takes several appends at once, each with its own result (embedded, Kafka)."""

    def append_many(
        self, calls: Sequence[tuple[str, Sequence[OutgoingRecord]]]
    ) -> Sequence[Placed | BaseException | Later]: ...


class Appender(Protocol):
    """Appends queued from an event loop, each answered by a future once committed."""

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> asyncio.Future[Placed]: ...

    def close(self) -> None: ...


def committer_for(writer: GroupWriter) -> Appender:
    """The writer's own ``loop_committer()`` when it has one (the embedded log's writer process, read and
    written by the event loop itself), else a :class:`Committer` thread."""
    factory = getattr(writer, "loop_committer", None)
    appender: Appender = factory() if factory is not None else Committer(writer)
    return appender


def server_writer(log: Log) -> LogWriter:
    """The writer a server appends through: the log's ``process_writer()`` when it has one (the
    embedded log commits in a child process, out of reach of the event loop's GIL), else ``writer()``."""
    factory = getattr(log, "process_writer", None)
    writer: LogWriter = factory() if factory is not None else log.writer()
    return writer


class Committer:
    """One committing thread for a :class:`GroupWriter`, started by the first append. Appends reach it
    through a ``SimpleQueue`` (a C queue: cheaper for the event loop than a condition variable)."""

    def __init__(self, writer: GroupWriter) -> None:
        self._writer = writer
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._waiters: ThreadPoolExecutor | None = None  # for Later results, started by the first
        self._closed = False

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> asyncio.Future[Placed]:
        """Queue one append (from the event loop); the future holds its positions or its error."""
        future: asyncio.Future[Placed] = asyncio.get_running_loop().create_future()
        with self._lock:  # so that nothing is queued behind the stop mark
            if self._closed:
                raise LogError("the API is stopping: nothing more is appended")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pinpipe-committer", daemon=True)
                self._thread.start()
            self._queue.put((topic, records, future))
        return future

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._queue.put(None)
        if thread is not None:
            thread.join()
        if self._waiters is not None:  # the waits already handed over end within their wait_s
            self._waiters.shutdown(wait=True)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            group: list[_Pending] = []
            item = self._queue.get()
            while True:
                if item is None:
                    stopping = True
                else:
                    group.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if group:
                self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        calls = [(topic, records) for topic, records, _ in group]
        results: Sequence[Placed | BaseException | Later]
        try:
            results = self._writer.append_many(calls)
        except BaseException as exc:  # the whole group failed: every caller gets the error
            results = [exc] * len(group)
        now: list[_Pending] = []
        decided: list[Placed | BaseException] = []
        for pending, result in zip(group, results, strict=True):
            if isinstance(result, Later):
                self._decide_apart(pending, result)
            else:
                now.append(pending)
                decided.append(result)
        _hand_back(now, decided)

    def _decide_apart(self, pending: _Pending, later: Later) -> None:
        """Run ``later`` on a waiting thread and hand its result back to ``pending``'s future."""
        if self._waiters is None:
            self._waiters = ThreadPoolExecutor(WAITERS, thread_name_prefix="pinpipe-claim-wait")

        def decide() -> None:
            result: Placed | BaseException
            try:
                result = later.decide()
            except BaseException as exc:
                result = exc
            _hand_back([pending], [result])

        self._waiters.submit(decide)


def _hand_back(group: list[_Pending], results: list[Placed | BaseException]) -> None:
    """Each result to its future, on the future's event loop (one wake-up per loop)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
    for (_, _, future), result in zip(group, results, strict=True):
        by_loop.setdefault(future.get_loop(), []).append((future, result))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these any more
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[_Settled]) -> None:
    for future, result in settled:
        resolve(future, result)
