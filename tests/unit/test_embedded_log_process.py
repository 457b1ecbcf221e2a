"""The embedded log's writer process: groups committed in a child, answered only after their COMMIT;
a child that dies acknowledges nothing more and is replaced; a child whose server dies exits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from pinpipe.errors import LogUnavailableError
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.log.embedded.db import DB_NAME
from pinpipe.log.embedded.process import _receive, _send, serve
from pinpipe.log.embedded.writer import EmbeddedLogWriter
from tests.unit import test_api_committer
from tests.unit.api_support import read_all

TOPIC = test_api_committer.TOPIC
log = test_api_committer.log  # the fixture: an embedded log holding TOPIC


def record(n: int, key: str | None = None) -> OutgoingRecord:
    return OutgoingRecord(b'{"n":%d}' % n, idempotency_key=key, fingerprint=key and f"fp-{key}")


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once ``pid`` has exited (gone, or a zombie nobody reaped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_appends_are_answered_after_the_childs_commit(log: EmbeddedLog) -> None:
    writer = log.process_writer()
    try:
        first = writer.append(TOPIC, [record(0, "a"), record(1)])
        again = writer.append(TOPIC, [record(0, "a")])  # a retry: stored once, same position
        results = writer.append_many([(TOPIC, [record(2)]), ("no-such-topic", [record(3)])])
    finally:
        writer.close()
    assert again == first[:1]
    assert isinstance(results[0], list) and isinstance(results[1], Exception)
    assert sorted(r.value for r in read_all(log, TOPIC)) == [b'{"n":0}', b'{"n":1}', b'{"n":2}']


def test_the_child_commits_every_group_waiting_in_one_transaction(log: EmbeddedLog) -> None:
    ours, theirs = socket.socketpair()
    for n in range(3):  # three groups sent before the child reads any
        _send(ours, [(TOPIC, [(b'{"n":%d}' % n, None, None, None, None, (), None)])])
    ours.shutdown(socket.SHUT_WR)
    with contextlib.closing(EmbeddedLogWriter(log.directory)) as writer:
        serve(theirs, writer)
    answers = [_receive(ours) for _ in range(3)]
    assert all(len(a) == 1 and isinstance(a[0], list) for a in answers)  # one answer per group
    stored = read_all(log, TOPIC)
    assert len(stored) == 3 and len({r.timestamp for r in stored}) == 1  # one commit


def test_a_child_killed_before_its_commit_acknowledges_nothing_and_is_replaced(
    log: EmbeddedLog,
) -> None:
    writer = log.process_writer()
    try:
        writer.append(TOPIC, [record(0)])
        pid = writer.pid
        assert pid is not None
        # another connection holds the write lock: the child waits in BEGIN IMMEDIATE, before any write
        blocker = sqlite3.connect(log.directory / DB_NAME, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        outcome: list[object] = []
        appending = threading.Thread(
            target=lambda: outcome.append(_attempt(writer, [record(1, "k")])), daemon=True
        )
        appending.start()
        time.sleep(0.3)
        assert not outcome  # not answered while its commit cannot happen
        os.kill(pid, signal.SIGKILL)
        appending.join(10)
        blocker.execute("ROLLBACK")
        blocker.close()
        assert isinstance(outcome[0], LogUnavailableError)
        assert [r.value for r in read_all(log, TOPIC)] == [b'{"n":0}']  # nothing of it was stored
        retried = writer.append(TOPIC, [record(1, "k")])  # a new child answers the retry
        assert writer.pid not in (None, pid)
        assert writer.append(TOPIC, [record(1, "k")]) == retried  # and a second retry is stored once
    finally:
        writer.close()
    assert sorted(r.value for r in read_all(log, TOPIC)) == [b'{"n":0}', b'{"n":1}']


def _attempt(writer, records: list[OutgoingRecord]) -> object:
    try:
        return writer.append(TOPIC, records)
    except Exception as exc:
        return exc


def test_the_loop_committer_fails_what_a_killed_child_held_then_starts_another(log: EmbeddedLog) -> None:
    writer = log.process_writer()
    committer = writer.loop_committer()

    async def main() -> tuple[list[object], list[object]]:
        await committer.append(TOPIC, [record(0)])
        pid = committer.pid
        assert pid is not None
        blocker = sqlite3.connect(log.directory / DB_NAME, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        held = [committer.append(TOPIC, [record(n, f"k{n}")]) for n in range(1, 5)]
        await asyncio.sleep(0.3)
        assert not any(f.done() for f in held)  # nothing answered before its commit
        os.kill(pid, signal.SIGKILL)
        lost = await asyncio.gather(*held, return_exceptions=True)
        blocker.execute("ROLLBACK")
        blocker.close()
        retried = await asyncio.gather(*(committer.append(TOPIC, [record(n, f"k{n}")]) for n in range(1, 5)))
        assert committer.pid not in (None, pid)
        return list(lost), list(retried)

    try:
        lost, retried = asyncio.run(main())
    finally:
        committer.close()
        writer.close()
    assert all(isinstance(r, LogUnavailableError) for r in lost)
    assert all(isinstance(r, list) for r in retried)
    assert sorted(r.value for r in read_all(log, TOPIC)) == [b'{"n":%d}' % n for n in range(5)]


def test_the_child_exits_when_its_server_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pinpipe.locations import embedded_url\n"
        "from pinpipe.log.base import OutgoingRecord\n"
        "from pinpipe.log.embedded import EmbeddedLog\n"
        "log = EmbeddedLog(embedded_url(sys.argv[1])); log.create_topic('t', 1)\n"
        "writer = log.process_writer(); writer.append('t', [OutgoingRecord(b'x')])\n"
        "print(writer.pid, flush=True); time.sleep(60)\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "log")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline())
        server.kill()
        server.wait(10)
        assert wait_gone(child)
    finally:
        server.kill()
        server.wait()


def test_the_loop_committer_sends_a_large_group_in_one_write(log: EmbeddedLog) -> None:
    """500 records of 600 bytes (a batched request of pin records) sent while the child is busy with
    another commit leave nothing in the transport's buffer: the child finds the whole group when it
    turns to it, instead of waiting for the event loop's next turn to send the rest."""
    writer = log.process_writer()
    committer = writer.loop_committer()
    records = [OutgoingRecord(b"%600d" % n, key=b"%d" % n) for n in range(500)]

    async def main() -> int:
        await committer.append(TOPIC, [record(0)])  # the child started and connected
        blocker = sqlite3.connect(log.directory / DB_NAME, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        held = committer.append(TOPIC, [record(1)])  # the child waits for the write lock with it
        await asyncio.sleep(0.3)
        pending = committer.append(TOPIC, records)
        await asyncio.sleep(0)  # the group is sent
        transport = committer._transport
        assert transport is not None and not held.done()
        left = transport.get_write_buffer_size()
        blocker.execute("ROLLBACK")
        blocker.close()
        await asyncio.gather(held, pending)
        return left

    try:
        left = asyncio.run(main())
    finally:
        committer.close()
        writer.close()
    assert left == 0
    assert len(read_all(log, TOPIC)) == 502
