"""Which API process writes a new idempotency key: agreed through a claims topic on the same cluster.

The index of :mod:`pinpipe.log.kafka.idempotency` only knows what is already in the topic, so two
processes that receive the same new key at the same moment would both write it. Before writing records
whose key the topic does not hold yet, a process therefore appends a *claim* for the call's first key to
``__pinpipe-claims.<topic>`` (in the partition of the key's CRC-32, so every claim for one key lands in one
partition; idempotent producer, ``acks=all``) and reads that partition up to its own claim. The claims
sent together go as one Kafka record per partition (``{"claims": [[key, id, supersedes], ...]}``, folded
in list order): a group of requests pays one delivery report and one fetched record, not one per key.
Records of one claim each (``{"claim": id, "supersedes": ...}`` keyed by the idempotency key) are folded
too. A claims topic has one partition: librdkafka sends one produce request per partition and a broker
answers a connection's requests one at a time, so the claims of a group spread over several partitions of
one broker would wait for as many ``acks=all`` round trips. (Every process takes the partition count from
the topic, so one created with more partitions works the same, only slower.) Every process
reads the same claims in the same order and folds them with one rule (:class:`ClaimBook`): the first claim
of a key wins; a later claim wins only if it names the current winner as the one it supersedes. So at any
offset exactly one claim is the winner, and all processes agree which.

- The winner writes the records, each ``produce`` only within ``window`` seconds of sending its claim
  (``Ticket.check``); the producer gives up on a record ``timeout_s`` after it was handed over. A claim is
  used for one attempt: after a failed write the key waits for the lease like any other.
- A loser waits (at most ``wait_s``, then LogUnavailableError: HTTP 503 with Retry-After) until the topic
  holds the keys (it re-reads the topic), then answers from there: the same offsets, or 42207 when the
  stored fingerprint differs.
- A winner that died (``kill -9`` between claim and write, or during the write) holds the key only for
  ``lease`` = window + timeout_s + margin seconds after another process first *read* its claim, which is
  later than the winner sent it. By then everything the winner wrote has landed or failed for good, so a
  process re-reads the topic: if the keys are there it answers from them, otherwise it appends a claim
  superseding the dead one and, if that wins, writes. Records are stored once, whoever finishes the job.

The one assumption is the clock's: a process paused (not killed) for longer than the margin between its
``Ticket.check`` and handing the record to librdkafka could still write after the lease. The margin is
``timeout_s / 2`` (at least 1 s).

Claims topics start with ``__`` so :meth:`KafkaLog.topics` hides them, keep every claim (about 100 bytes
per new key; see RETENTION) and are deleted with their topic. Each process keeps, per key, the current
winner (about 150 bytes a key), read incrementally.

``PINPIPE_TEST_KILL_AFTER_CLAIM=TEXT`` (tests only) makes the process ``kill -9`` itself right after it won
the claim of a key containing TEXT, before writing: the crash the lease exists for.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from pinpipe._optional import require
from pinpipe.config import kill_after_claim
from pinpipe.errors import LogError, LogUnavailableError
from pinpipe.log.kafka.delivery import DELIVERY_MARGIN_S, Deliveries
from pinpipe.log.kafka.producer import Generation, RenewingProducer
from pinpipe.log.kafka.reader import is_fatal, raise_for

ck = require("confluent_kafka", "kafka")


class KafkaAdmin(Protocol):
    """What claims need of :class:`~pinpipe.log.kafka.log.KafkaLog`."""

    timeout_s: float
    common: dict[str, Any]

    def create_topic(
        self, topic: str, partitions: int | None = None, *, config: Mapping[str, str] | None = None
    ) -> None: ...

    def partition_count(self, topic: str) -> int: ...


PREFIX = "__pinpipe-claims."
PRODUCER = {"enable.idempotence": True, "acks": "all", "linger.ms": 0}
"""The claims' producer settings (before the log's own). A group's claims are one record per partition,
sent at once: nobody flushes them (the read-back is the wait), and waking librdkafka's broker thread
for each ``produce`` costs once a group (six times a lingering producer's cost when each claim was a
record of its own: py-spy, 64 clients)."""
POLL_S = 0.05
BURST = 1000
"""Claim records taken from the reader's queue in one call once the first has arrived."""
RECORD_BYTES = 512 * 1024
"""Bound on one claims record's JSON, counting each claim at its largest (a key of n characters is at most
6n bytes escaped, ids and punctuation under 100): well under Kafka's default 1 MB record limit."""
Entry = tuple[str, str, str | None]
"""One claim: (idempotency key, claim id, the claim id it supersedes or None)."""
RETENTION = {"retention.ms": "-1", "retention.bytes": "-1"}
"""Claims are kept as long as their topic: a claim lost to retention would let a process that has not
read the topic since the key was stored win the key again."""


def claims_topic(topic: str) -> str:
    name = PREFIX + topic
    if len(name) > 249:
        raise LogError(
            f"topic name {topic!r} is too long to hold idempotency claims (at most 232 characters)"
        )
    return name


def claim_ids(count: int) -> list[str]:
    """``count`` random claim ids, 128 bits each like a uuid4, from one read of the system's random source:
    a group's claims pay one call, not a UUID object each (a tenth of the committing thread's time)."""
    raw = os.urandom(16 * count).hex()
    return [raw[i : i + 32] for i in range(0, 32 * count, 32)]


def partition_of(key: str, count: int) -> int:
    """The claims partition of ``key``: its CRC-32 modulo ``count`` (librdkafka's default partitioner,
    which placed the records of one claim each)."""
    return zlib.crc32(key.encode()) % count if count > 1 else 0


def claim_records(claims: Sequence[Entry], count: int) -> list[tuple[int, list[int]]]:
    """The records ``claims`` are sent in over ``count`` partitions: (partition, indexes of its claims in
    order), one record per partition unless its claims could pass ``RECORD_BYTES``."""
    by_partition: dict[int, list[int]] = {}
    for i, (key, _, _) in enumerate(claims):
        by_partition.setdefault(partition_of(key, count), []).append(i)
    records: list[tuple[int, list[int]]] = []
    for partition, members in by_partition.items():
        size = RECORD_BYTES
        for i in members:
            largest = 6 * len(claims[i][0]) + 100
            if size + largest > RECORD_BYTES:
                records.append((partition, []))
                size = 0
            records[-1][1].append(i)
            size += largest
    return records


def encode(entries: Sequence[Entry]) -> bytes:
    """One claims record holding ``entries`` (all of one partition), folded in this order."""
    return orjson.dumps({"claims": entries})


def decode(key: bytes | None, value: bytes) -> list[Entry]:
    """The claims of one record: a group's (:func:`encode`), or one claim keyed by its idempotency key."""
    body = orjson.loads(value)
    if "claims" in body:
        return [(k, c, s) for k, c, s in body["claims"]]
    if key is None:
        raise LogError("a claims record without an idempotency key")
    return [(key.decode(), body["claim"], body["supersedes"])]


@dataclass(slots=True)
class Claim:
    id: str
    seen: float
    """Monotonic time this process sent the claim (its own) or first read it."""


class ClaimBook:
    """The claims read so far, folded per key into the current winner (the rule is the module's)."""

    def __init__(self) -> None:
        self.winners: dict[str, Claim] = {}

    def add(self, key: str, claim_id: str, supersedes: str | None, seen: float) -> None:
        self.add_all([(key, claim_id, supersedes)], {claim_id: seen}, seen)

    def add_all(self, entries: Sequence[Entry], sent: dict[str, float], now: float) -> None:
        """Fold ``entries`` in order; a claim's ``seen`` is popped from ``sent``
        (our own claims' sending times), else ``now``. One loop per record, not a call per claim."""
        winners = self.winners
        for key, claim_id, supersedes in entries:
            seen = sent.pop(claim_id, now)
            current = winners.get(key)
            if current is None or (supersedes is not None and supersedes == current.id):
                winners[key] = Claim(claim_id, seen)


@dataclass(frozen=True, slots=True)
class Ticket:
    """The right to write the records of a won claim, until ``deadline`` (monotonic)."""

    key: str
    deadline: float

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise LogUnavailableError(f"Kafka: the claim on idempotency key {self.key!r} ran out; retry")


class KafkaClaims:
    """The claims of one process on one cluster: appends them, reads them back, decides."""

    def __init__(self, log: KafkaAdmin) -> None:
        self._log = log
        self.window = log.timeout_s
        self.lease = self.window + log.timeout_s + max(1.0, log.timeout_s / 2)
        self.wait_s = max(1.0, log.timeout_s / 2)
        self._books: dict[tuple[str, int], ClaimBook] = {}  # (claims topic, partition) -> its claims
        self._next: dict[tuple[str, int], int] = {}  # (claims topic, partition) -> next offset to read
        self._counts: dict[str, int] = {}  # claims topic -> its partition count
        self._sent: dict[str, float] = {}  # own claim id -> when it was sent (until it is decided)
        self._ready: set[str] = set()
        self._lock = threading.Lock()  # the consumer and the books
        self._producers: RenewingProducer | None = None
        self._consumer: Any = None
        self._kill_after = kill_after_claim()

    def acquire(self, topic: str, key: str, stored: Callable[[], bool]) -> Ticket | None:
        """A Ticket when this process won the claim on ``key`` in ``topic``; None once ``stored()`` (which
        re-reads the topic) finds the records written by another. LogUnavailableError after ``wait_s``."""
        ctopic = self._prepare(topic)
        give_up = time.monotonic() + self.wait_s
        supersedes: str | None = None
        while True:
            (claim_id,) = claim_ids(1)
            sent = time.monotonic()
            (partition,), (winner,) = self._claim(ctopic, [(key, claim_id, supersedes)])
            ticket = self._ticket(key, claim_id, winner, sent, time.monotonic())
            if ticket is not None:
                return ticket
            while True:  # another claim holds the key: wait for its records or for its lease to end
                expired = time.monotonic() > winner.seen + self.lease
                if stored():  # read after `expired` was decided: nothing can land after the lease
                    return None
                if expired:
                    supersedes = winner.id
                    break
                if time.monotonic() > give_up:
                    raise LogUnavailableError(
                        f"Kafka: idempotency key {key!r} is being written by another API process; retry"
                    )
                time.sleep(POLL_S)
                with self._lock:
                    book = self._books.get((ctopic, partition))
                if book is None:
                    raise LogUnavailableError(f"Kafka: the claims of {topic!r} were reset; retry")
                winner = book.winners[key]

    def acquire_many(self, topic: str, keys: Sequence[str]) -> list[Ticket | None]:
        """Claims on every key of ``keys`` in ``topic`` sent together and read back once: a Ticket for each
        key this process won, None for one another claim holds (:meth:`acquire` then waits for it)."""
        ctopic = self._prepare(topic)
        ids = claim_ids(len(keys))
        sent = time.monotonic()
        _, winners = self._claim(
            ctopic, [(key, claim_id, None) for key, claim_id in zip(keys, ids, strict=True)]
        )
        now = time.monotonic()
        return [self._ticket(k, c, w, sent, now) for k, c, w in zip(keys, ids, winners, strict=True)]

    def _ticket(self, key: str, claim_id: str, winner: Claim, sent: float, now: float) -> Ticket | None:
        """The right to write ``key`` when our claim ``claim_id`` (sent at ``sent``) is the winner and its
        window has not passed at ``now`` (read once for a group's claims)."""
        if winner.id != claim_id or now >= sent + self.window:
            return None
        if self._kill_after is not None and self._kill_after in key:
            os.kill(os.getpid(), signal.SIGKILL)
        return Ticket(key, sent + self.window)

    def forget(self, topic: str) -> None:
        ctopic = PREFIX + topic
        with self._lock:
            self._ready.discard(ctopic)
            self._counts.pop(ctopic, None)
            for tp in [tp for tp in self._next if tp[0] == ctopic]:
                del self._next[tp]
                self._books.pop(tp, None)
            if self._consumer is not None:
                from confluent_kafka import TopicPartition

                assigned = [tp for tp in self._consumer.assignment() if tp.topic == ctopic]
                if assigned:
                    self._consumer.incremental_unassign(
                        [TopicPartition(tp.topic, tp.partition) for tp in assigned]
                    )

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            if self._producers is not None:
                self._producers.close()
                self._producers = None

    def _prepare(self, topic: str) -> str:
        """The claims topic of ``topic``, created and assigned to this process's reader on first use."""
        ctopic = claims_topic(topic)
        with self._lock:
            if ctopic in self._ready:
                return ctopic
        self._log.create_topic(ctopic, 1, config=RETENTION)
        count = self._log.partition_count(ctopic)
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        with self._lock:
            if ctopic in self._ready:
                return ctopic
            if self._producers is None:
                ms = int(self._log.timeout_s * 1000)
                config = PRODUCER | {"message.timeout.ms": ms} | self._log.common
                self._producers = RenewingProducer(config, self._log.timeout_s, "claims")
                self._consumer = Consumer(
                    self._log.common
                    | {
                        "group.id": "pinpipe-idempotency-scan",
                        "enable.auto.commit": False,
                        "auto.offset.reset": "earliest",
                        "fetch.wait.max.ms": 100,
                    }
                )
            self._consumer.incremental_assign(
                [TopicPartition(ctopic, p, OFFSET_BEGINNING) for p in range(count)]
            )
            for p in range(count):
                self._books[(ctopic, p)] = ClaimBook()
                self._next[(ctopic, p)] = 0
            self._counts[ctopic] = count
            self._ready.add(ctopic)
        return ctopic

    def _claim(self, ctopic: str, claims: Sequence[Entry]) -> tuple[list[int], list[Claim]]:
        """Send ``claims`` and read them back: the partition of each and the winner of its key there. The
        producer is replaced once it went fatal (:mod:`pinpipe.log.kafka.producer`): the claims it failed
        get the retryable error, the next ones go out on a new producer."""
        producers = self._producers
        assert producers is not None, "claims used before _prepare"
        gen = producers.acquire()
        try:
            gen.serve(0)  # the reports of earlier claims, which nobody waited for, and a fatal error
            if gen.fatal is not None:  # it went fatal while idle: nothing of these claims went to it
                gen = producers.renew(gen)
            partitions, deliveries = self._append(gen, ctopic, claims)
            wanted = [(p, claim_id, key) for p, (key, claim_id, _) in zip(partitions, claims, strict=True)]
            return partitions, self._read_to(gen, ctopic, wanted, deliveries)
        finally:
            producers.release(gen)

    def _append(self, gen: Generation, ctopic: str, claims: Sequence[Entry]) -> tuple[list[int], Deliveries]:
        """Send each claim ``(key, claim id, superseded claim id)`` on ``gen``: one record per partition (and
        per ``RECORD_BYTES``). Returns the partition of each claim and the records' delivery reports, which
        nobody waits for: a claim read back is held by every in-sync replica already (a consumer reads
        up to the high watermark only), and the reply to the produce comes when the read-back does."""
        chunks = claim_records(claims, self._counts[ctopic])
        deliveries = Deliveries(len(chunks))
        now = time.monotonic()
        partitions = [0] * len(claims)
        for n, (partition, members) in enumerate(chunks):
            for i in members:
                self._sent[claims[i][1]] = now
                partitions[i] = partition
            try:
                gen.client.produce(
                    ctopic,
                    value=encode([claims[i] for i in members]),
                    partition=partition,
                    on_delivery=deliveries.callback(n),
                )
            except BufferError as exc:
                raise LogUnavailableError("Kafka: the claims producer's queue is full; retry") from exc
            except ck.KafkaException as exc:  # mapped by the caller, unless the producer went fatal
                if is_fatal(exc.args[0]) and gen.failed(exc.args):
                    raise gen.error(f"claim idempotency keys in {ctopic!r}") from exc
                raise
        return partitions, deliveries

    def _read_to(
        self, gen: Generation, ctopic: str, wanted: Sequence[tuple[int, str, str]], deliveries: Deliveries
    ) -> list[Claim]:
        """Read the claims up to each of ours, ``(partition, claim id, key)`` (all assigned partitions
        are folded on the way), and return the winner of each key there. A failed delivery of ours
        (``deliveries``, produced on ``gen``) ends the wait with its error."""
        now = time.monotonic()
        deadline = now + self._log.timeout_s + DELIVERY_MARGIN_S
        served = now  # when our delivery reports were last served
        unread = [claim_id for _, claim_id, _ in wanted]
        sent = self._sent
        with self._lock:
            while unread := [claim_id for claim_id in unread if claim_id in sent]:
                now = time.monotonic()
                if now - served >= POLL_S:  # our delivery reports, once a wait: an error ends it
                    gen.serve(0)
                    served = now
                if deliveries.errors:
                    what = f"claim idempotency key in {ctopic!r}"
                    if gen.failed(deliveries.errors):
                        raise gen.error(what)
                    raise_for(deliveries.errors[0], what)
                if now > deadline:
                    raise LogUnavailableError(f"Kafka: reading claims of {ctopic!r} timed out")
                msg = self._consumer.poll(POLL_S)  # returns at the first message (consume waits for all)
                if msg is None:
                    served = 0.0  # nothing read for POLL_S: see the reports before waiting again
                    continue
                self._fold(msg)
                if any(claim_id in sent for claim_id in unread):  # the rest already fetched, at once
                    for more in self._consumer.consume(BURST, 0):
                        self._fold(more)
            return [self._books[(ctopic, p)].winners[key] for p, _, key in wanted]

    def _fold(self, msg: Any) -> None:
        if msg.error() is not None:  # a broker away or a deleted topic: the caller's deadline decides
            return
        tp = (msg.topic(), msg.partition())
        book = self._books.get(tp)
        if book is None:  # forgotten meanwhile
            return
        if msg.offset() < self._next[tp]:  # the topic was deleted and created again by another process
            book = self._books[tp] = ClaimBook()
        book.add_all(decode(msg.key(), msg.value()), self._sent, time.monotonic())
        self._next[tp] = msg.offset() + 1
