"""Kafka writers: the idempotent producer behind :meth:`pinpipe.log.kafka.log.KafkaLog.writer`.

``append`` returns once every record is acknowledged by all in-sync replicas (or raises). A keyed append
first claims its new idempotency keys in the process's index and, across API processes, in the claims topic
(:mod:`pinpipe.log.kafka.claims`): one ``acks=all`` round trip and a read-back before the records' own.

``append_many`` does several appends at once, each with its own result: for the API's committer, which
gathers the single-record requests arriving together. Their claims go out as one record and are read back
once, then every record is produced and waited for once, so concurrent requests share two round trips
instead of paying two each from a pool thread of their own. A call whose claim another API process holds
is not waited for in the group: its result is a :class:`~pinpipe.log.base.Later`, its own ``append`` for
the committer to run apart, so a key sent to two processes at once (by one tenant) delays no other call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, Protocol

from pinpipe._optional import require
from pinpipe.errors import IdempotencyConflictError, LogError, LogUnavailableError
from pinpipe.log.base import Later, OutgoingRecord
from pinpipe.log.kafka.claims import KafkaClaims, Ticket
from pinpipe.log.kafka.delivery import Deliveries, wait_for
from pinpipe.log.kafka.idempotency import FINGERPRINT_HEADER, HEADER, KafkaIdempotencyIndex, Placement
from pinpipe.log.kafka.producer import Generation, RenewingProducer
from pinpipe.log.kafka.reader import is_fatal, raise_for

ck = require("confluent_kafka", "kafka")

Placed = list[tuple[int, int]]

PRODUCER = {"enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random", "linger.ms": 5}
"""The records' producer settings (before the log's own): acknowledged by every in-sync replica, never
written twice by the producer's own retries, keyed records placed as Kafka's Java clients place them."""


class _QueueFull(LogUnavailableError):
    """librdkafka's queue stayed full for ``timeout_s``: the cluster takes nothing."""


class KafkaCluster(Protocol):
    """What a writer needs of :class:`pinpipe.log.kafka.log.KafkaLog` (which builds the writer)."""

    timeout_s: float
    common: dict[str, Any]
    index: KafkaIdempotencyIndex
    claims: KafkaClaims

    def partition_count(self, topic: str) -> int: ...


class _Call:
    """One append on its way: the keys it claimed in the index, what the topic holds for the others, its
    claim ticket and its delivery reports."""

    __slots__ = (
        "batch",
        "claimed",
        "failure",
        "first",
        "keys",
        "known",
        "records",
        "sending",
        "ticket",
        "topic",
    )

    def __init__(self, topic: str, records: Sequence[OutgoingRecord], keys: list[str]) -> None:
        self.topic = topic
        self.records = records
        self.keys = keys
        self.known: dict[str, Placement] = {}
        self.claimed: set[str] = set()
        self.ticket: Ticket | None = None
        self.batch = Deliveries(len(records))
        self.first: dict[str, int] = {}  # idempotency key -> index of its first record in this call
        self.sending = False
        self.failure: LogError | None = None  # its producer's fatal error, when that failed records of it


class _Sending:
    """The producer generation an append (or a group of them) hands its records to. One found fatal at
    ``produce`` before any record went to it is swapped for a new one once: nothing of the append can
    be stored by the old one, so the append goes on as if nothing happened. Afterwards the appends it
    failed get its retryable error."""

    __slots__ = ("gen", "handed", "renewed")

    def __init__(self, gen: Generation) -> None:
        self.gen = gen
        self.handed = False
        self.renewed = False


def _new_call(topic: str, records: Sequence[OutgoingRecord], keys: list[str], count: int) -> _Call:
    """The call of ``records`` to ``topic`` (``count`` partitions); LogError for a partition out of range."""
    for rec in records:
        if rec.partition is not None and not 0 <= rec.partition < count:
            raise LogError(f"partition {rec.partition} out of range: {topic!r} has {count}")
    return _Call(topic, records, keys)


def _landed(call: _Call) -> tuple[set[str], dict[str, Placement], bool]:
    """What the index is told of a call's claimed keys: (keys, where they landed, whether anything was
    sent)."""
    if not call.sending:
        return call.claimed, {}, False
    known, records, positions = call.known, call.records, call.batch.placed
    # stored by another process, then ours
    placed = {k: known[k] for k in call.claimed if k in known} if known else {}
    for k, i in call.first.items():
        if (p := positions[i]) is not None:
            placed[k] = (*p, records[i].fingerprint)
    return call.claimed, placed, True


def _keys(records: Sequence[OutgoingRecord]) -> list[str]:
    return list(dict.fromkeys(r.idempotency_key for r in records if r.idempotency_key))


def _conflict(records: Sequence[OutgoingRecord], known: Mapping[str, Placement]) -> str | None:
    """The first idempotency key of the call stored (or repeated in the call) with another fingerprint."""
    fingerprints = {key: where[2] for key, where in known.items()}
    for rec in records:
        key = rec.idempotency_key
        if key and fingerprints.setdefault(key, rec.fingerprint) != rec.fingerprint:
            return key
    return None


@contextmanager
def _reading(topic: str) -> Iterator[None]:
    """librdkafka errors and timeouts while reading ``topic``'s keys or claims, as pinpipe errors."""
    try:
        yield
    except ck.KafkaException as exc:
        raise_for(exc.args[0], f"read idempotency keys of {topic!r}")
    except (TimeoutError, RuntimeError) as exc:
        raise LogUnavailableError(f"Kafka: {exc}") from exc


class KafkaLogWriter:
    """An idempotent producer; ``append`` returns once every record is acknowledged by all in-sync
    replicas (or raises). Safe to share between threads."""

    def __init__(self, log: KafkaCluster) -> None:
        self._log = log
        ms = int(log.timeout_s * 1000)
        self.config: dict[str, Any] = {**PRODUCER, "message.timeout.ms": ms, **log.common}
        self._producers = RenewingProducer(self.config, log.timeout_s, "records")
        self._closed = False

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> Placed:
        self._ensure_open()
        if not records:
            return []
        call = self._open(topic, records)
        try:
            if call.claimed:
                call.ticket = self._acquire(call)
                self._check(call)
            with self._sending() as sending:
                self._send(call, sending)
                self._wait(sending.gen, [call])
        finally:
            self._release(call)
        return self._result(call)

    def append_many(
        self, calls: Sequence[tuple[str, Sequence[OutgoingRecord]]]
    ) -> list[Placed | BaseException | Later]:
        """Several appends at once, each with the result ``append`` would give it (its positions or its
        error): the keys of every call are claimed in the index under one lock per topic, the claims sent
        together and read back once, then every record is produced and waited for once. A call repeating
        a key of an earlier call waits for that one. A call whose claim another process holds (and one
        repeating its key) is a :class:`Later`: its ``append``, to be run by the caller apart.
        Once one step finds the cluster out of reach (LogUnavailableError, after ``timeout_s``), the calls
        not yet attempted get the same error at once: a group pays the timeout once, not once a call or
        a topic, so the requests behind it are answered 503 while the broker is down."""
        self._ensure_open()
        results: list[Placed | BaseException | Later | None] = [None] * len(calls)
        going: dict[int, _Call] = {}
        later: list[int] = []
        down: LogUnavailableError | None = None  # once the cluster is out of reach, the rest fail at once
        held: set[tuple[str, str]] = set()  # (topic, key) of the calls another process's claim holds
        try:
            down = self._open_many(calls, going, results, later)
            down = self._send_many(going, results, down, held)
        finally:
            self._release_all(going.values())
        for i, call in going.items():
            if results[i] is None:
                try:
                    results[i] = self._result(call)
                except Exception as exc:
                    results[i] = exc
        for i in later:
            if down is not None:
                results[i] = down
                continue
            topic, records = calls[i]
            if any((topic, key) in held for key in _keys(records)):
                results[i] = Later(partial(self.append, topic, records))
                continue
            try:
                results[i] = self.append(*calls[i])
            except Exception as exc:
                results[i] = exc
                down = exc if isinstance(exc, LogUnavailableError) else None
        return [r if r is not None else LogError("append not attempted") for r in results]

    def _send_many(
        self,
        going: dict[int, _Call],
        results: list[Placed | BaseException | Later | None],
        down: LogUnavailableError | None,
        held: set[tuple[str, str]],
    ) -> LogUnavailableError | None:
        """The sending half of ``append_many``: the opened calls' claims acquired, their records handed to
        one producer and waited for; the calls failing on the way get their errors in ``results`` and are
        released (out of ``going``), those another process's claim holds get a :class:`Later` (their keys
        into ``held``). Returns the error that found the cluster out of reach, if one did."""
        failed, waiting = self._acquire_many(going)
        for i, failure in failed.items():
            results[i] = failure
            if isinstance(failure, LogUnavailableError):
                down = failure
            self._release(going.pop(i))
        for i in waiting:  # released with nothing sent; its own append claims the keys again
            call = going.pop(i)
            held.update((call.topic, key) for key in call.keys)
            results[i] = Later(partial(self.append, call.topic, call.records))
            self._release(call)
        if down is not None:  # nothing sent yet: the calls without new keys need not wait it out
            for i in list(going):
                results[i] = down
                self._release(going.pop(i))
            return down
        with self._sending() as sending:
            for i, call in list(going.items()):
                try:
                    if down is not None:
                        raise down
                    self._send(call, sending)
                except Exception as exc:  # nothing waited for: released as append does
                    results[i] = exc
                    self._release(going.pop(i))
                    down = exc if isinstance(exc, _QueueFull) else down
            try:
                self._wait(sending.gen, list(going.values()))
            except LogUnavailableError as exc:
                down = exc
                for i, call in going.items():
                    if call.batch.waiting > 0:
                        results[i] = exc
        return down

    def _open_many(
        self,
        calls: Sequence[tuple[str, Sequence[OutgoingRecord]]],
        going: dict[int, _Call],
        results: list[Placed | BaseException | Later | None],
        later: list[int],
    ) -> LogUnavailableError | None:
        """:meth:`_open` for every call of ``append_many``: the opened ones into ``going``, the failed
        ones' errors into ``results``, those repeating a key of an earlier call into ``later``; the index
        claims a topic's keys for all its calls at once. Returns the error that found the cluster out of
        reach, if one did (the calls after it are not opened)."""
        taken: set[tuple[str, str]] = set()
        counts: dict[str, int] = {}
        keyed: dict[str, list[int]] = {}  # topic -> its calls with keys
        down: LogUnavailableError | None = None
        for i, (topic, records) in enumerate(calls):
            if not records:
                results[i] = []
                continue
            keys = _keys(records)
            pairs = [(topic, key) for key in keys]
            if pairs and not taken.isdisjoint(pairs):
                later.append(i)  # its index claim would wait for the earlier call's release: after it
            elif down is not None:
                results[i] = down
            else:
                try:
                    count = counts.get(topic)
                    if count is None:
                        count = counts[topic] = self._log.partition_count(topic)
                    going[i] = _new_call(topic, records, keys, count)
                except Exception as exc:
                    results[i] = exc
                    down = exc if isinstance(exc, LogUnavailableError) else None
                    continue
                if keys:
                    keyed.setdefault(topic, []).append(i)
                    taken.update(pairs)
        for topic, members in keyed.items():
            try:
                if down is not None:
                    raise down
                with _reading(topic):
                    knowns = self._log.index.claim_many(topic, [going[i].keys for i in members])
            except Exception as exc:  # nothing claimed
                for i in members:
                    results[i] = exc
                    del going[i]
                down = exc if isinstance(exc, LogUnavailableError) else down
                continue
            for i, known in zip(members, knowns, strict=True):
                try:
                    self._claimed(going[i], known)
                except Exception as exc:
                    results[i] = exc
                    del going[i]
        return down

    def _ensure_open(self) -> None:
        if self._closed:
            raise LogError("append on a closed Kafka log writer")

    def _open(self, topic: str, records: Sequence[OutgoingRecord]) -> _Call:
        """The call with its keys claimed in this process's index and checked against what the topic
        holds (IdempotencyConflictError, nothing claimed, when a key is stored with another fingerprint)."""
        call = _new_call(topic, records, _keys(records), self._log.partition_count(topic))
        if call.keys:
            with _reading(topic):
                known = self._log.index.claim(topic, call.keys)
            self._claimed(call, known)
        return call

    def _claimed(self, call: _Call, known: dict[str, Placement]) -> None:
        """The call's keys claimed in the index, ``known`` those the topic holds: checked against them
        (IdempotencyConflictError with the keys released, when one is stored with another fingerprint)."""
        call.known = known
        call.claimed = set(call.keys).difference(known) if known else set(call.keys)
        try:
            self._check(call)
        except BaseException:
            self._release(call)
            raise

    def _check(self, call: _Call) -> None:
        if not call.known and len(call.keys) == len(call.records):
            return  # every record keyed, no key stored or repeated: nothing to compare
        conflict = _conflict(call.records, call.known)
        if conflict is not None:
            raise IdempotencyConflictError(
                f"idempotency key {conflict!r} is stored in {call.topic!r} with another fingerprint"
            )

    def _acquire(self, call: _Call) -> Ticket | None:
        """Win the claim on the call's first key among all API processes (claims.py), or wait until
        another process stored the keys; ``call.known`` is updated with what the topic holds then."""
        topic, keys, known = call.topic, call.keys, call.known

        def stored() -> bool:
            with _reading(topic):
                known.update(self._log.index.refresh(topic, [k for k in keys if k not in known]))
            return len(known) == len(keys)

        with _reading(f"__pinpipe-claims.{topic}"):
            return self._log.claims.acquire(topic, keys[0], stored)

    def _acquire_many(self, calls: Mapping[int, _Call]) -> tuple[dict[int, BaseException], list[int]]:
        """Tickets for the calls with new keys: every first key claimed in one burst per topic. Returns the
        calls that failed (same keys as ``calls``) with their errors, and those whose claim another process
        holds (no ticket: waiting for it is their own ``append``'s job, not the group's)."""
        failed: dict[int, BaseException] = {}
        waiting: list[int] = []
        down: LogUnavailableError | None = None
        by_topic: dict[str, list[int]] = {}
        for i, call in calls.items():
            if call.claimed:
                by_topic.setdefault(call.topic, []).append(i)
        for topic, members in by_topic.items():
            if down is not None:
                failed.update(dict.fromkeys(members, down))
                continue
            try:
                with _reading(f"__pinpipe-claims.{topic}"):
                    tickets = self._log.claims.acquire_many(topic, [calls[i].keys[0] for i in members])
            except Exception as exc:
                failed.update(dict.fromkeys(members, exc))
                down = exc if isinstance(exc, LogUnavailableError) else None
                continue
            for i, ticket in zip(members, tickets, strict=True):
                if ticket is None:
                    waiting.append(i)
                else:
                    calls[i].ticket = ticket
        return failed, waiting

    @contextmanager
    def _sending(self) -> Iterator[_Sending]:
        """The producer generation of one append or group, held (not closed) until its reports are in."""
        sending = _Sending(self._producers.acquire())
        try:
            yield sending
        finally:
            self._producers.release(sending.gen)

    def _send(self, call: _Call, sending: _Sending) -> None:
        """Hand the call's records to the producer, each key once (the known ones not at all). A record
        refused once others of the call were handed over fails the call as LogUnavailableError: those
        may be stored, so the client is told to retry with the same key rather than that nothing was."""
        call.sending = True
        batch, first = call.batch, call.first
        handed = False
        for i, rec in enumerate(call.records):
            ikey = rec.idempotency_key
            if ikey and (ikey in call.known or ikey in first):
                batch.skip()
                continue
            try:
                if call.ticket is not None:
                    call.ticket.check()
                self._produce(call.topic, rec, batch.callback(i), sending)
            except LogError as exc:
                if not handed or isinstance(exc, LogUnavailableError):
                    raise
                raise LogUnavailableError(f"{exc} (other records of the append may be stored)") from exc
            handed = True
            if ikey:
                first[ikey] = i

    def _release(self, call: _Call) -> None:
        """Tell the index where the call's claimed keys landed (none when nothing was sent)."""
        self._release_all([call])

    def _release_all(self, calls: Iterable[_Call]) -> None:
        """:meth:`_release` for several calls, one index call per topic."""
        by_topic: dict[str, list[tuple[set[str], dict[str, Placement], bool]]] = {}
        for call in calls:
            if not call.keys:
                continue
            call.keys = []  # released once
            by_topic.setdefault(call.topic, []).append(_landed(call))
        for topic, released in by_topic.items():
            self._log.index.release_many(topic, released)

    def _result(self, call: _Call) -> Placed:
        if call.failure is not None:
            raise call.failure
        if call.batch.errors:
            raise_for(call.batch.errors[0], f"append to {call.topic!r}")
        out = []
        for i, rec in enumerate(call.records):
            ikey = rec.idempotency_key
            where = (
                call.known[ikey][:2]
                if ikey in call.known
                else call.batch.placed[call.first[ikey]]
                if ikey
                else call.batch.placed[i]
            )
            assert where is not None
            out.append(where)
        return out

    def _produce(self, topic: str, rec: OutgoingRecord, on_delivery: Any, sending: _Sending) -> None:
        headers = [*rec.headers]  # librdkafka takes a list, not a tuple
        if rec.idempotency_key:
            headers.append((HEADER, rec.idempotency_key.encode()))
            if rec.fingerprint is not None:
                headers.append((FINGERPRINT_HEADER, rec.fingerprint.encode()))
        partition = -1 if rec.partition is None else rec.partition  # -1: the partitioner's choice
        timestamp = 0 if rec.timestamp is None else int(rec.timestamp * 1000)  # 0: now
        give_up: float | None = None
        while True:
            try:
                sending.gen.client.produce(
                    topic,
                    value=rec.value,
                    key=rec.key,
                    partition=partition,
                    on_delivery=on_delivery,
                    timestamp=timestamp,
                    headers=headers or None,
                )
                sending.handed = True
                return
            except BufferError as exc:  # local queue full: serve delivery reports, then try again
                now = time.monotonic()
                give_up = give_up or now + self._log.timeout_s
                if now > give_up:
                    raise _QueueFull(
                        f"Kafka: the producer's queue stayed full for {self._log.timeout_s}s; retry"
                    ) from exc
                sending.gen.serve(0.05)
            except ck.KafkaException as exc:
                if not is_fatal(exc.args[0]):  # a dead producer refuses every record with _FATAL
                    raise_for(exc.args[0], f"append to {topic!r}")
                sending.gen.failed(exc.args)
                if sending.handed or sending.renewed:
                    raise sending.gen.error(f"append to {topic!r}") from exc
                sending.gen = self._producers.renew(sending.gen)  # nothing went to the dead one
                sending.renewed = True

    def _wait(self, gen: Generation, calls: Sequence[_Call]) -> None:
        """Serve delivery reports until every record of ``calls`` has one. Every record of the calls
        is queued by now, so waiting ``linger.ms`` for more would only delay them: flushing sends what is
        queued at once (records of other threads' calls included). A call with failed records whose
        producer went fatal fails with the retryable error (the next append gets a new producer)."""
        try:
            wait_for(
                [c.batch for c in calls],
                lambda: gen.serve(0.01, flush=True),
                self._log.timeout_s,
                "delivery reports",
            )
        finally:
            failed = [c for c in calls if c.batch.errors]
            if failed and gen.failed(e for c in failed for e in c.batch.errors):
                for call in failed:
                    call.failure = gen.error(f"append to {call.topic!r}")

    def flush(self) -> None:
        left = self._producers.flush()
        if left:
            raise LogUnavailableError(f"Kafka: {left} records still undelivered after {self._log.timeout_s}s")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._producers.close()
