"""The API's committers: appends queued from the event loop are committed together, each with its own
result, and only answered after their commit; the same for the thread over an in-process writer and for
the embedded log's writer process read and written by the event loop."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from pinpipe.errors import IdempotencyConflictError, LogError
from pinpipe.ingest.committer import Appender, Committer
from pinpipe.locations import embedded_url
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.log.embedded.process import ProcessWriter
from pinpipe.log.embedded.writer import EmbeddedLogWriter
from tests.unit.api_support import read_all

TOPIC = "t"


def record(n: int, key: str | None = None, fingerprint: str | None = None) -> OutgoingRecord:
    return OutgoingRecord(b'{"n":%d}' % n, idempotency_key=key, fingerprint=fingerprint)


@pytest.fixture
def log(tmp_path: Path):
    log = EmbeddedLog(embedded_url(tmp_path / "log"))
    log.create_topic(TOPIC, 2)
    yield log
    log.close()


@pytest.fixture(params=["thread", "process"])
def committer(request: pytest.FixtureRequest, log: EmbeddedLog):
    writer: EmbeddedLogWriter | ProcessWriter
    if request.param == "thread":
        writer = log.writer()
        appender: Appender = Committer(writer)
    else:
        writer = log.process_writer()
        appender = writer.loop_committer()
    yield appender
    appender.close()
    writer.close()


def test_concurrent_appends_share_commits_and_each_gets_its_positions(
    log: EmbeddedLog, committer: Appender
) -> None:

    async def main() -> list:
        return await asyncio.gather(*(committer.append(TOPIC, [record(n)]) for n in range(50)))

    placed = asyncio.run(main())
    assert len({p[0] for p in placed}) == 50  # every append its own position
    stored = read_all(log, TOPIC)
    assert sorted(r.value for r in stored) == sorted(b'{"n":%d}' % n for n in range(50))
    assert len({r.timestamp for r in stored}) < 50  # one append time per commit: commits were shared


def test_a_failing_append_fails_alone_in_its_group(log: EmbeddedLog, committer: Appender) -> None:
    with contextlib.closing(log.writer()) as writer:
        writer.append(TOPIC, [record(0, "k", "first")])

    async def main() -> list:
        calls = [
            committer.append(TOPIC, [record(1)]),
            committer.append(TOPIC, [record(2, "k", "another")]),  # the key with another fingerprint
            committer.append("no-such-topic", [record(3)]),
            committer.append(TOPIC, [record(4)]),
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    first, conflict, missing, last = asyncio.run(main())
    assert isinstance(conflict, IdempotencyConflictError)
    assert isinstance(missing, LogError)
    assert isinstance(first, list) and isinstance(last, list)
    assert sorted(r.value for r in read_all(log, TOPIC)) == [b'{"n":0}', b'{"n":1}', b'{"n":4}']


def test_closing_commits_what_is_queued_then_refuses(log: EmbeddedLog, committer: Appender) -> None:

    async def main() -> None:
        pending = [committer.append(TOPIC, [record(n)]) for n in range(5)]
        await asyncio.to_thread(committer.close)
        await asyncio.gather(*pending)
        with pytest.raises(LogError, match="stopping"):
            committer.append(TOPIC, [record(9)])

    asyncio.run(main())
    assert len(read_all(log, TOPIC)) == 5
