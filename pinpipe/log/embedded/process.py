"""The embedded log's writer in a process of its own, for a server whose event loop holds the GIL.

In the API server, a committing thread that runs SQLite itself releases the GIL around every statement
and must then wait to get it back from the busy event loop: a commit group of a few statements took
several times its CPU time in wall time, and single-record requests waited on that pipeline. Here a
child process (running this module's ``main``) owns an :class:`EmbeddedLogWriter` and its
own GIL; the server sends it each commit group over a socket pair and reads back, after the COMMIT, each
call's positions or error. One round trip per group, whatever the number of statements.

Durability and exactly-once are the in-process writer's: the child answers only after the COMMIT that
holds a group, so nothing is acknowledged before it is durable. Several writers (this child, other
processes) may share one log: SQLite's write lock serialises their transactions, each of which reads the
partition ends and stored idempotency keys inside it. When the child dies, the calls waiting for it fail
with :class:`LogUnavailableError` (their records may or may not have been committed: a retry with the
same idempotency key is stored once) and the next call starts a new child. When the server dies, the
child reads end-of-file and exits: it acknowledges nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from pinpipe.errors import LogError, LogUnavailableError
from pinpipe.log.base import OutgoingRecord, resolve
from pinpipe.log.embedded.writer import EmbeddedLogWriter, alone

_HEAD = struct.Struct("!I")
_STOP_S = 30.0
Placed = list[tuple[int, int]]
_Calls = list[tuple[str, list[tuple[Any, ...]]]]


def _framed(payload: object) -> bytes:
    """One message: its length, then the pickle."""
    data = pickle.dumps(payload, pickle.HIGHEST_PROTOCOL)
    return _HEAD.pack(len(data)) + data


def _send(sock: socket.socket, payload: object) -> None:
    sock.sendall(_framed(payload))


def _group_message(calls: Sequence[tuple[str, Sequence[OutgoingRecord]]]) -> _Calls:
    """A group's calls as the child takes them: each record a plain tuple (``_fields``)."""
    return [(topic, [_fields(r) for r in records]) for topic, records in calls]


def _receive(sock: socket.socket) -> Any:
    """One message, or None at end-of-file (the other side closed or died)."""
    head = _exactly(sock, _HEAD.size)
    if head is None:
        return None
    body = _exactly(sock, _HEAD.unpack(head)[0])
    return None if body is None else pickle.loads(body)


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return bytes(buffer)


class ProcessWriter:
    """Appends through a child process: all records of a call or none; thread-safe. The child is started
    by the first append, and again after it died.

    Pipelined: :meth:`submit` sends a group and returns; a reader thread answers it when the child's
    reply comes. The child commits every group waiting on its socket in one transaction, so while one
    commit runs (its fsync) the next group is already there. At most ``_IN_FLIGHT`` groups are sent and
    unanswered: beyond that the appends gather into the next group instead of into more messages."""

    def __init__(self, directory: Path, retention: tuple[int | None, float | None, float]) -> None:
        """``retention``: bytes, seconds and check interval, as :class:`EmbeddedLogWriter` takes them."""
        self._args = [str(directory), *map(repr, retention)]
        self._cond = threading.Condition()
        self._child: _Child | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (tests kill it)."""
        child = self._child
        return None if child is None else child.process.pid

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> Placed:
        return alone(self.append_many([(topic, records)]))

    def append_many(
        self, calls: Sequence[tuple[str, Sequence[OutgoingRecord]]]
    ) -> list[Placed | BaseException]:
        """Each call's positions or error, after the child's COMMIT of all of them (see
        :meth:`EmbeddedLogWriter.append_many`)."""
        done = threading.Event()
        answer: list[list[Placed | BaseException]] = []

        def settle(results: list[Placed | BaseException]) -> None:
            answer.append(results)
            done.set()

        self.submit(calls, settle)
        done.wait()
        return answer[0]

    def submit(
        self,
        calls: Sequence[tuple[str, Sequence[OutgoingRecord]]],
        settle: Callable[[list[Placed | BaseException]], None],
    ) -> None:
        """Send a group; ``settle`` gets each call's positions or error (from the reader thread) once the
        child committed it, or the error that stopped the child. Waits while ``_IN_FLIGHT`` groups are
        unanswered."""
        message = _group_message(calls)
        with self._cond:
            while True:
                if self._closed:
                    raise LogError("append on a closed embedded log writer")
                child = self._child if self._child is not None else self._start()
                if len(child.waiting) < _IN_FLIGHT:
                    break
                self._cond.wait()
            child.waiting.append((len(calls), settle))
            try:
                _send(child.sock, message)
            except OSError:
                child.sock.shutdown(socket.SHUT_RDWR)  # the reader thread fails what is waiting

    def flush(self) -> None:
        """Nothing to do: every append is durable when it returns."""

    def close(self) -> None:
        """Wait for the answers of what was sent, then let the child stop."""
        with self._cond:
            self._closed = True
            while self._child is not None and self._child.waiting:
                self._cond.wait()
            child, self._child = self._child, None
        if child is not None:
            child.stop()

    def loop_committer(self) -> LoopCommitter:
        """Appends from an event loop through a child of their own, read and written by the loop."""
        return LoopCommitter(self)

    def _start(self) -> _Child:
        child = self._child = _Child.spawn(self._args)
        threading.Thread(target=self._read, args=(child,), name="pinpipe-writer-replies", daemon=True).start()
        return child

    def _read(self, child: _Child) -> None:
        """Answer each group as its reply comes, in order; at end-of-file fail what is still waiting."""
        while True:
            try:
                results = _receive(child.sock)
            except (OSError, pickle.UnpicklingError, EOFError):
                results = None
            with self._cond:
                if results is None or not child.waiting:
                    break
                count, settle = child.waiting.popleft()
                self._cond.notify_all()
            if not isinstance(results, list) or len(results) != count:
                results = [LogError("the embedded log's writer process answered out of step")] * count
            settle(results)
        with self._cond:
            lost, child.waiting = list(child.waiting), deque()
            if self._child is child:
                self._child = None
            self._cond.notify_all()
        child.stop(kill=bool(lost))
        for count, settle in lost:
            settle([_stopped()] * count)


_IN_FLIGHT = 2
_SEND_BUFFER = 4 << 20
"""Bytes the server's end of the socket may hold unread (Linux caps it at ``net.core.wmem_max``): a
group of 500 pin records (~330 KB) then goes to the child in one write. With the default (~208 KiB) the
rest of it waited for the event loop's next turn, one or more milliseconds behind the checks of other
requests, and the child waited with it."""


def _stopped() -> LogUnavailableError:
    return LogUnavailableError(
        "the embedded log's writer process stopped before it answered; retry "
        "(with the same idempotency key a retry is stored once)"
    )


_CHILD_MAIN = f"import sys; from {__name__} import main; main(sys.argv[1:])"
"""The child's program: ``-m`` would run this module a second time beside the copy its package imports
(runpy's RuntimeWarning on every start)."""


class _Child:
    """A running child, its socket and the groups sent to it and not answered yet (oldest first)."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.process = process
        self.sock = sock
        self.waiting: deque[tuple[int, Callable[[list[Placed | BaseException]], None]]] = deque()

    @classmethod
    def spawn(cls, args: list[str]) -> _Child:
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _CHILD_MAIN, str(theirs.fileno()), *args],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            ours.close()
            raise LogUnavailableError(f"cannot start the embedded log's writer process: {exc}") from exc
        finally:
            theirs.close()
        return cls(process, ours)

    def stop(self, kill: bool = False) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # end-of-file: the child closes its writer and exits
        if kill:
            with contextlib.suppress(OSError):
                self.process.kill()
        try:
            self.process.wait(_STOP_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.sock.close()


_Pending = tuple[str, Sequence[OutgoingRecord], "asyncio.Future[Placed]"]


class LoopCommitter:
    """Appends from the server's event loop, sent to a child and answered by the loop itself: no thread
    takes the GIL between a request and its answer. Each append is queued; the loop sends whatever is
    queued as one group (at most ``_IN_FLIGHT`` unanswered), and each reply resolves its group's futures,
    each after the COMMIT that holds it.

    Bound to the first event loop that appends (the server's). An append from another loop while that
    one runs goes through the writer's own child (``submit``, a thread hop); once the bound loop is
    closed, the next loop to append takes over, with a new child."""

    def __init__(self, writer: ProcessWriter) -> None:
        self._writer = writer
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._child: _Child | None = None
        self._transport: asyncio.Transport | None = None
        self._pending: list[_Pending] = []
        self._waiting: deque[list[_Pending]] = deque()
        self._flushing = False
        self._drained: threading.Event | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (tests kill it)."""
        child = self._child
        return None if child is None else child.process.pid

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> asyncio.Future[Placed]:
        """Queue one append (from the event loop); the future holds its positions or its error."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise LogError("the API is stopping: nothing more is appended")
        if loop is not self._loop:
            if self._loop is not None and not self._loop.is_closed():
                return self._by_thread(loop, topic, records)
            self._bind(loop)
        future: asyncio.Future[Placed] = loop.create_future()
        self._pending.append((topic, records, future))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush)
        return future

    def close(self) -> None:
        """Wait (from another thread) until what is queued is answered, then stop the child."""
        with self._lock:
            self._closed = True
        loop, child = self._loop, self._child
        if child is None:
            return
        if loop is not None and loop.is_running():
            drained = threading.Event()
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._drain, drained)
                drained.wait(_STOP_S)
        child.stop()

    def _drain(self, drained: threading.Event) -> None:
        """(On the loop.) Set ``drained`` once nothing queued or sent is unanswered, the child's
        socket closed."""
        if self._pending or self._waiting:
            self._drained = drained
            return
        self._shut()
        drained.set()

    def _shut(self) -> None:
        child, transport = self._child, self._transport
        self._child = self._transport = None
        if transport is not None:
            transport.close()  # end-of-file: the child closes its writer and exits
        elif child is not None:
            child.sock.close()

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        old = self._child
        if old is not None:
            old.stop(kill=True)  # its loop is closed: nobody waits for its answers
        self._pending, self._waiting, self._transport, self._flushing = [], deque(), None, False
        self._child = child = _Child.spawn(self._writer._args)
        self._loop = loop
        loop.create_task(self._connect(loop, child))

    async def _connect(self, loop: asyncio.AbstractEventLoop, child: _Child) -> None:
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: _Replies(self, child), child.sock)
        except OSError:
            self._lost(child)
            return
        if self._child is child:
            self._transport = cast(asyncio.Transport, transport)
            self._flush()

    def _flush(self) -> None:
        self._flushing = False
        transport = self._transport
        if transport is None or not self._pending or len(self._waiting) >= _IN_FLIGHT:
            return
        group, self._pending = self._pending, []
        self._waiting.append(group)
        transport.write(_framed(_group_message([(topic, records) for topic, records, _ in group])))

    def _answered(self, child: _Child, results: Any) -> None:
        if child is not self._child or not self._waiting:
            return
        group = self._waiting.popleft()
        if not isinstance(results, list) or len(results) != len(group):
            results = [LogError("the embedded log's writer process answered out of step")] * len(group)
        for (_, _, future), result in zip(group, results, strict=True):
            resolve(future, result)
        if self._pending:
            self._flush()
        elif not self._waiting and self._drained is not None:
            self._shut()
            self._drained.set()

    def _lost(self, child: _Child) -> None:
        """The child stopped: what it was sent and what is queued fails; the next append restarts it."""
        if child is not self._child:
            return
        lost = [*(p for group in self._waiting for p in group), *self._pending]
        self._pending, self._waiting, self._transport, self._child, self._loop = [], deque(), None, None, None
        child.stop(kill=True)
        for _, _, future in lost:
            resolve(future, _stopped())
        if self._drained is not None:
            self._drained.set()

    def _by_thread(
        self, loop: asyncio.AbstractEventLoop, topic: str, records: Sequence[OutgoingRecord]
    ) -> asyncio.Future[Placed]:
        future: asyncio.Future[Placed] = loop.create_future()

        def settle(results: list[Placed | BaseException]) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(resolve, future, results[0])

        self._writer.submit([(topic, records)], settle)
        return future


class _Replies(asyncio.Protocol):
    """The child's replies, read by the event loop: one framed pickle per group."""

    def __init__(self, committer: LoopCommitter, child: _Child) -> None:
        self._committer = committer
        self._child = child
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= _HEAD.size:
            (size,) = _HEAD.unpack_from(buffer)
            end = _HEAD.size + size
            if len(buffer) < end:
                return
            results = pickle.loads(buffer[_HEAD.size : end])
            del buffer[:end]
            self._committer._answered(self._child, results)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._committer._lost(self._child)


def _fields(record: OutgoingRecord) -> tuple[Any, ...]:
    """The record as a plain tuple, in the constructor's order: cheaper to pickle than the dataclass."""
    return (
        record.value,
        record.key,
        record.partition,
        record.idempotency_key,
        record.fingerprint,
        record.headers,
        record.timestamp,
    )


def _portable(result: Placed | BaseException) -> Placed | BaseException:
    """An error the parent can unpickle: pinpipe's own errors as they are, others as a LogError."""
    if isinstance(result, BaseException) and type(result).__module__ != "pinpipe.errors":
        return LogError(f"{type(result).__name__}: {result}")
    return result


def serve(sock: socket.socket, writer: EmbeddedLogWriter) -> None:
    """Commit the groups received, every group already waiting in one transaction, and answer each,
    until end-of-file."""
    while (first := _receive(sock)) is not None:
        groups = [first]
        while select.select([sock], [], [], 0)[0] and (more := _receive(sock)) is not None:
            groups.append(more)
        calls = [(t, [OutgoingRecord(*r) for r in rs]) for group in groups for t, rs in group]
        try:
            results = writer.append_many(calls)
        except Exception as exc:  # the whole transaction failed: every call gets the error
            results = [exc] * len(calls)
        for group in groups:
            _send(sock, [_portable(r) for r in results[: len(group)]])
            results = results[len(group) :]


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the server; it closes our socket
    fd, directory, retention_bytes, retention_s, retention_check_s = argv
    sock = socket.socket(fileno=int(fd))
    writer = EmbeddedLogWriter(
        Path(directory),
        None if retention_bytes == "None" else int(retention_bytes),
        None if retention_s == "None" else float(retention_s),
        float(retention_check_s),
    )
    try:
        serve(sock, writer)
    except OSError:
        pass  # the server went away mid-message: nothing more to answer
    finally:
        writer.close()
        sock.close()
    os._exit(0)
