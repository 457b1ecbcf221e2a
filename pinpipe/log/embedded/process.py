"""The embedded log's writer in a process of its own, for a server whose event loop holds the GIL.

In the API server, a committing thread that runs SQLite itself releases the GIL around every statement
and must then wait to get it back from the busy event loop: a commit group of a few statements took
several times its CPU time in wall time, and single-record requests waited on that pipeline. Here a
child process (``python -m pinpipe.log.embedded.process``) owns an :class:`EmbeddedLogWriter` and its
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
from typing import Any

from pinpipe.errors import LogError, LogUnavailableError
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.embedded.writer import EmbeddedLogWriter

_HEAD = struct.Struct("!I")
_STOP_S = 30.0
Placed = list[tuple[int, int]]
_Calls = list[tuple[str, list[tuple[Any, ...]]]]


def _send(sock: socket.socket, payload: object) -> None:
    data = pickle.dumps(payload, pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEAD.pack(len(data)) + data)


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

    def __init__(
        self,
        directory: Path,
        retention_bytes: int | None = None,
        retention_s: float | None = None,
        retention_check_s: float = 10.0,
    ) -> None:
        self._args = [str(directory), repr(retention_bytes), repr(retention_s), repr(retention_check_s)]
        self._cond = threading.Condition()
        self._child: _Child | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (tests kill it)."""
        child = self._child
        return None if child is None else child.process.pid

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> Placed:
        (result,) = self.append_many([(topic, records)])
        if isinstance(result, BaseException):
            raise result
        return result

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
        message: _Calls = [(topic, [_fields(r) for r in records]) for topic, records in calls]
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

    def _start(self) -> _Child:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), *self._args],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            ours.close()
            raise LogUnavailableError(f"cannot start the embedded log's writer process: {exc}") from exc
        finally:
            theirs.close()
        child = self._child = _Child(process, ours)
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


def _stopped() -> LogUnavailableError:
    return LogUnavailableError(
        "the embedded log's writer process stopped before it answered; retry "
        "(with the same idempotency key a retry is stored once)"
    )


class _Child:
    """A running child, its socket and the groups sent to it and not answered yet (oldest first)."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.process = process
        self.sock = sock
        self.waiting: deque[tuple[int, Callable[[list[Placed | BaseException]], None]]] = deque()

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


if __name__ == "__main__":
    main(sys.argv[1:])
