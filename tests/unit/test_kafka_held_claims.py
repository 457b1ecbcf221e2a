"""A call whose idempotency claim another API process holds waits for it apart: the rest of its group, and
the groups after it, are written and answered meanwhile (one tenant sending a key to two processes at once
must not stall every tenant's requests on one of them). On the scripted producer of kafka_support, with
claims held for the keys containing "held" until the test lets them go."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import pytest

from pinpipe.ingest.committer import Committer
from pinpipe.log.base import Later, OutgoingRecord
from pinpipe.log.kafka.claims import Ticket
from pinpipe.log.kafka.writer import KafkaLogWriter
from tests.unit.kafka_support import Cluster, OnePartitionLog, scripted_cluster

HOLD_S = 3.0
"""How long another process holds a claim at most here; every wait asserted is far shorter."""


class HeldClaims:
    """Claims on keys containing "held" are another process's until ``let_go`` is set (then ours, as
    after that process's lease); every other claim is won at once."""

    def __init__(self) -> None:
        self.let_go = threading.Event()

    def acquire_many(self, topic: str, keys: list[str]) -> list[Ticket | None]:
        return [None if "held" in key else Ticket(key, float("inf")) for key in keys]

    def acquire(self, topic: str, key: str, stored: Callable[[], bool]) -> Ticket:
        self.let_go.wait(HOLD_S)
        return Ticket(key, float("inf"))


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Cluster:
    return scripted_cluster(monkeypatch)


def _writer() -> tuple[KafkaLogWriter, HeldClaims]:
    log = OnePartitionLog(1.0)
    claims = log.claims = cast(Any, HeldClaims())
    return KafkaLogWriter(cast(Any, log)), claims


def _records(key: str) -> list[OutgoingRecord]:
    return [OutgoingRecord(key.encode(), idempotency_key=key, fingerprint="f")]


def test_a_group_is_written_without_waiting_for_a_claim_another_process_holds(cluster: Cluster) -> None:
    writer, claims = _writer()
    started = time.monotonic()
    results = writer.append_many([("t", _records("held")), ("t", _records("free")), ("t", _records("held"))])
    assert time.monotonic() - started < 1.0
    held, free, repeated = results
    assert free == [(0, 0)]
    assert isinstance(held, Later) and isinstance(repeated, Later)  # the repeat of its key waits too
    assert cluster.stored == [b"free"]
    claims.let_go.set()
    assert held.decide() == [(0, 1)]  # the repeat's own append is then answered from the index
    assert cluster.stored == [b"free", b"held"]
    writer.close()


def test_the_committer_answers_other_requests_while_one_waits_for_a_held_claim(cluster: Cluster) -> None:
    writer, claims = _writer()
    committer = Committer(writer)

    async def run() -> None:
        held = committer.append("t", _records("held"))
        free = committer.append("t", _records("free"))
        assert await asyncio.wait_for(free, 1.0) == [(0, 0)]
        later = committer.append("t", _records("later"))  # a group after the waiting one
        assert await asyncio.wait_for(later, 1.0) == [(0, 1)]
        assert not held.done()
        claims.let_go.set()
        assert await asyncio.wait_for(held, HOLD_S) == [(0, 2)]

    try:
        asyncio.run(run())
    finally:
        committer.close()
        writer.close()
    assert cluster.stored == [b"free", b"later", b"held"]


def test_closing_the_committer_waits_for_the_claims_still_held(cluster: Cluster) -> None:
    """What was acknowledged to nobody yet is still decided: the API stops after the waits end."""
    writer, claims = _writer()
    committer = Committer(writer)

    async def run() -> None:
        held = committer.append("t", _records("held"))
        await asyncio.sleep(0.2)  # the group is written; the held call waits apart
        threading.Timer(0.3, claims.let_go.set).start()
        await asyncio.to_thread(committer.close)
        assert await asyncio.wait_for(held, 1.0) == [(0, 0)]

    asyncio.run(run())
    assert cluster.stored == [b"held"]
    writer.close()
