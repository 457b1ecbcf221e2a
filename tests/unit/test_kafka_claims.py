"""The fold rule every API process applies to a key's claims, in partition order (log/kafka/claims.py)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError

from pinpipe.errors import LogError, LogUnavailableError, TopicNotFoundError
from pinpipe.log.kafka.claims import (
    ClaimBook,
    KafkaClaims,
    Ticket,
    claim_records,
    claims_topic,
    decode,
    encode,
    partition_of,
)
from pinpipe.log.kafka.producer import RenewingProducer


def winner(*claims: tuple[str, str | None]) -> str:
    book = ClaimBook()
    for i, (claim_id, supersedes) in enumerate(claims):
        book.add("k", claim_id, supersedes, float(i))
    return book.winners["k"].id


def test_the_first_claim_wins_and_later_plain_claims_lose() -> None:
    assert winner(("a", None), ("b", None), ("c", None)) == "a"


def test_a_claim_superseding_the_winner_takes_over_only_the_first_one() -> None:
    assert winner(("a", None), ("b", "a")) == "b"
    assert winner(("a", None), ("b", "a"), ("c", "a")) == "b"  # two takers: the first in order wins
    assert winner(("a", None), ("b", "a"), ("c", "b")) == "c"
    assert winner(("a", None), ("c", "x")) == "a"  # superseding a claim that is not the winner: ignored


def test_keys_are_independent_and_the_winner_keeps_when_it_was_seen() -> None:
    book = ClaimBook()
    book.add("k1", "a", None, 1.0)
    book.add("k2", "b", None, 2.0)
    book.add("k1", "c", None, 3.0)
    assert (book.winners["k1"].id, book.winners["k1"].seen) == ("a", 1.0)
    assert book.winners["k2"].id == "b"


def test_a_ticket_refuses_writes_after_its_deadline() -> None:
    Ticket("k", float("inf")).check()
    with pytest.raises(LogUnavailableError, match="ran out"):
        Ticket("k", 0.0).check()


def test_claims_topic_names() -> None:
    assert claims_topic("0a1b2c3d4e5f.pin") == "__pinpipe-claims.0a1b2c3d4e5f.pin"
    with pytest.raises(LogError, match="too long"):
        claims_topic("t" * 240)


def test_a_group_of_claims_is_one_record_folded_in_order() -> None:
    entries = [("k1", "a", None), ("k2", "b", None), ("k1", "c", "a")]
    assert decode(None, encode(entries)) == entries


def test_a_record_of_one_claim_is_keyed_by_its_idempotency_key() -> None:
    assert decode(b"k1", b'{"claim": "a", "supersedes": null}') == [("k1", "a", None)]
    with pytest.raises(LogError):
        decode(None, b'{"claim": "a", "supersedes": null}')


def test_claims_are_one_record_per_partition_each_under_a_megabyte_however_long_their_keys() -> None:
    short = [(f"k{i}", "a" * 32, None) for i in range(40)]
    assert claim_records(short, 1) == [(0, list(range(40)))]

    longest = [("\u0001" * 256 + str(i), "a" * 32, "b" * 32) for i in range(3000)]
    records = claim_records(longest, 3)
    assert sorted(i for _, members in records for i in members) == list(range(3000))
    for partition, members in records:
        assert members == sorted(members)
        assert all(partition_of(longest[i][0], 3) == partition for i in members)
        assert len(encode([longest[i] for i in members])) < 1_000_000


class _ClaimsLog:
    timeout_s = 30.0

    def __init__(self) -> None:
        self.common: dict[str, str] = {}


class _Producer:
    """Keeps the claims produced; reports each one with ``error`` when polled, or never (None)."""

    def __init__(self, error: KafkaError | None) -> None:
        self.error = error
        self.records: list[tuple[int, bytes]] = []
        self._reports: list[Any] = []

    def produce(self, topic: str, value: bytes, partition: int, on_delivery: Any) -> None:
        self.records.append((partition, value))
        self._reports.append(on_delivery)

    def poll(self, timeout: float) -> int:
        if self.error is not None:
            reports, self._reports = self._reports, []
            for report in reports:
                report(self.error, None)
        return 0


def _message(offset: int, value: bytes) -> Any:
    """A fetched claims record, as librdkafka's ``Message`` answers for it."""
    return SimpleNamespace(
        error=lambda: None,
        topic=lambda: "__pinpipe-claims.t",
        partition=lambda: 0,
        offset=lambda: offset,
        key=lambda: None,
        value=lambda: value,
    )


class _Consumer:
    """Fetches what the producer produced (the broker's high watermark passed it), if ``fetches``."""

    def __init__(self, producer: _Producer, fetches: bool) -> None:
        self.producer, self.fetches, self.read = producer, fetches, 0

    def poll(self, timeout: float) -> Any:
        if not self.fetches or self.read >= len(self.producer.records):
            time.sleep(0.001)
            return None
        self.read += 1
        return _message(self.read - 1, self.producer.records[self.read - 1][1])

    def consume(self, count: int, timeout: float) -> list[Any]:
        return []


def _claims(error: KafkaError | None, fetches: bool) -> KafkaClaims:
    claims = KafkaClaims(cast(Any, _ClaimsLog()))
    producer = _Producer(error)
    claims._producers = RenewingProducer({}, 30.0, "claims", make=lambda config: producer)
    claims._consumer = _Consumer(producer, fetches)
    claims._books[("__pinpipe-claims.t", 0)] = ClaimBook()
    claims._next[("__pinpipe-claims.t", 0)] = 0
    claims._counts["__pinpipe-claims.t"] = 1
    claims._ready.add("__pinpipe-claims.t")
    return claims


def test_claims_read_back_are_decided_without_waiting_for_their_delivery_reports() -> None:
    """A consumer reads up to the high watermark only: a claim read back is held by every in-sync
    replica, which is all its delivery report would say."""
    tickets = _claims(None, fetches=True).acquire_many("t", ["k1", "k2"])
    assert [t.key for t in tickets if t is not None] == ["k1", "k2"]


def test_a_claim_whose_delivery_failed_ends_the_wait_with_its_error_at_once() -> None:
    claims = _claims(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART), fetches=False)
    started = time.monotonic()
    with pytest.raises(TopicNotFoundError):
        claims.acquire_many("t", ["k1"])
    assert time.monotonic() - started < 1.0
