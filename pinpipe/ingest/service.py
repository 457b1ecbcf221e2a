"""What both dialects share: validate records against their topic's schema and append them to the log.

A request's valid records are appended in ONE ``LogWriter.append`` call (all or nothing on the embedded
log) and only after every record of the request was checked, so a request that is rejected whole writes
nothing; records that fail their schema or name a missing partition get a per-record error instead and the
others are written. The answer is sent only after ``append`` returned: an acknowledged record is in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pinpipe import exact_json
from pinpipe.access import owner
from pinpipe.config import Settings
from pinpipe.errors import (
    ErrorCode,
    IdempotencyConflictError,
    LogUnavailableError,
    PinpipeError,
    TopicCollisionError,
    TopicNotFoundError,
)
from pinpipe.ingest.committer import Appender, GroupWriter, committer_for, server_writer
from pinpipe.ingest.errors import ApiError
from pinpipe.ingest.idempotency import RequestKey
from pinpipe.ingest.metrics import ApiMetrics
from pinpipe.log.base import Headers, Log, LogWriter, OutgoingRecord
from pinpipe.schema import (
    Kind,
    identity_problem,
    kind_of_any,
    stream_names,
    topic_names,
    validate_record,
)

logger = logging.getLogger("pinpipe.api")

CHECK_SLICE = 100
"""Records checked on the event loop between two turns of the other connections (about 0.2 ms of work):
a 500-record request holds the loop no longer at a time than a worker thread would hold the GIL."""

Space = Literal["topics", "streams"]
"""The REST proxy's topics or the Kinesis proxy's streams (possibly the same log)."""


@dataclass(slots=True)
class Item:
    """One record of a request, parsed. ``raw`` holds the value bytes when they were given as bytes (a
    base64 Kinesis ``Data`` that is not JSON); otherwise ``value`` is the parsed JSON value."""

    value: Any
    key: bytes | None = None
    partition: int | None = None
    raw: bytes | None = None
    problem: str | None = None
    """Set when parsing already found this record invalid (a per-record 42206)."""
    headers: Headers = ()
    timestamp: float | None = None


@dataclass(slots=True)
class Outcome:
    partition: int | None
    offset: int | None
    error_code: int | None = None
    error: str | None = None


@dataclass(slots=True)
class _Checked:
    """A request's records as the checks go: the outcomes known already, the records to append and
    their positions in the request; and what every record is checked against."""

    outcomes: list[Outcome | None]
    batch: list[OutgoingRecord]
    positions: list[int]
    count: int
    """The topic's partitions."""
    kind: Kind | None
    fingerprint: str | None


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body`` or ApiError 40001. Every number keeps the text it was sent as
    (``exact_json``: 1e400, 2**70, -0 are stored as sent). NaN and Infinity are not JSON and are refused;
    so are text that is not UTF-8 (UTF-16 included), nesting deeper than Python's parser goes, an integer
    of more digits than it converts (4300) and an object naming a member twice (which one a consumer
    would read is its parser's choice)."""
    try:
        return exact_json.loads(body, unique_names=True)
    except RecursionError:
        raise ApiError(
            ErrorCode.MALFORMED_BODY, "request body is nested too deeply (a record value: about 325 levels)"
        ) from None
    except exact_json.IntegerTooLong as exc:
        raise ApiError(ErrorCode.MALFORMED_BODY, f"request body holds {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(ErrorCode.MALFORMED_BODY, f"request body is not valid JSON: {exc}") from None


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON of a parsed value, numbers as sent (the log's value format) or ApiError 40001
    (lone surrogates)."""
    try:
        return exact_json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(
            ErrorCode.MALFORMED_BODY, f"request body holds text that is not valid Unicode: {exc}"
        ) from None
    except RecursionError:
        raise ApiError(ErrorCode.MALFORMED_BODY, "request body nests values too deeply") from None


def encode_key(key: Any) -> bytes | None:
    """A record key as log bytes: UTF-8 of a string, compact JSON of anything else, None for null."""
    if key is None:
        return None
    if isinstance(key, str):
        try:
            return key.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError(ErrorCode.MALFORMED_BODY, f"record key is not valid Unicode: {exc}") from None
    return encode_json(key)


class IngestService:
    """The log side of the API: topic lookup, validation, idempotency keys, appends, metrics."""

    def __init__(self, settings: Settings, log: Log, stream_log: Log, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.logs: dict[Space, Log] = {"topics": log, "streams": stream_log}
        self.shared = log is stream_log
        self._writers: dict[Space, LogWriter] = {}
        self._committers: dict[Space, Appender] = {}
        self._cache: dict[Space, dict[str, int]] = {"topics": {}, "streams": {}}
        self._lock = threading.Lock()
        self._started = False
        self._missing: list[str] = []
        self._admin_lock = threading.Lock()

    # lifecycle
    def start(self) -> bool:
        """Create the six topics and streams of the prefix and the writers; False (logged) when the log
        is not reachable yet. Called at startup and again by requests until it succeeds."""
        if self._started:
            return True
        with self._lock:
            if self._started:
                return True
            try:
                prefix, partitions = self.settings.prefix, self.settings.log.partitions
                for name in topic_names(prefix).values():
                    self.logs["topics"].create_topic(name, partitions)
                for name in stream_names(prefix).values():
                    self.logs["streams"].create_topic(name, partitions)
                for space, space_log in self.logs.items():  # known partition counts: the first produce
                    self._cache[space] = dict(space_log.topics())  # of each topic needs no lookup
                writer = server_writer(self.logs["topics"])
                self._writers["topics"] = writer
                self._writers["streams"] = writer if self.shared else server_writer(self.logs["streams"])
                committers: dict[int, Appender] = {}
                for space, each in self._writers.items():
                    if isinstance(each, GroupWriter):
                        self._committers[space] = committers.setdefault(id(each), committer_for(each))
            except PinpipeError as exc:
                logger.warning("log not ready: %s", exc)
                return False
            self._started = True
            return True

    def ensure_started(self) -> None:
        if not self.start():
            raise ApiError(
                ErrorCode.LOG_UNAVAILABLE, "the log is not reachable yet; retry", {"Retry-After": "1"}
            )

    def not_ready(self) -> str | None:
        """Why the API cannot serve its routes now (the log does not answer, or a topic or stream of the
        prefix was deleted since startup), or None when it can."""
        if not self.start():
            return "log unavailable"
        prefix = self.settings.prefix
        expected: dict[Space, list[str]] = {
            "topics": list(topic_names(prefix).values()),
            "streams": list(stream_names(prefix).values()),
        }
        missing = []
        try:
            found = {key: log.topics() for key, log in {id(x): x for x in self.logs.values()}.items()}
        except Exception as exc:  # any failure to answer means not ready
            logger.warning("readiness check failed: %s", exc)
            return "log unavailable"
        for space, names in expected.items():
            missing += [n for n in names if n not in found[id(self.logs[space])]]
        if not missing:
            self._missing = []
            return None
        if missing != self._missing:
            logger.warning(
                "not ready: %s missing from the log (recreate them or restart)", ", ".join(missing)
            )
            self._missing = missing
        return f"missing: {', '.join(missing)}"

    def close(self) -> None:
        self._started = False
        for committer in {id(c): c for c in self._committers.values()}.values():
            committer.close()  # what it holds is committed before the writers close
        self._committers.clear()
        for writer in {id(w): w for w in self._writers.values()}.values():
            try:
                writer.flush()
            finally:
                writer.close()
        self._writers.clear()
        self._started = False

    # topics
    def names(self, space: Space) -> dict[str, int]:
        """Topics (or streams) and partition counts. On a log shared by both, streams are the names
        starting with ``streaming-`` and topics the others."""
        self.ensure_started()
        with log_errors():
            found = self.logs[space].topics()
        self._cache[space] = dict(found)
        if self.shared:
            is_stream = space == "streams"
            found = {n: p for n, p in found.items() if n.startswith("streaming-") == is_stream}
        return found

    def partitions(self, space: Space, name: str) -> int:
        """Partition count of an existing topic/stream, or ApiError 40401."""
        count = self._cache[space].get(name)
        if count is None:
            self.names(space)
            count = self._cache[space].get(name)
        if self.shared and name.startswith("streaming-") != (space == "streams"):
            count = None  # one log holds both: each dialect sees only its own names
        if count is None:
            noun = "topic" if space == "topics" else "stream"
            raise ApiError(ErrorCode.NOT_FOUND, f"{noun} {name!r} not found")
        return count

    def forget(self, space: Space, name: str) -> None:
        self._cache[space].pop(name, None)

    # produce
    def produce(
        self, space: Space, name: str, items: list[Item], idempotency_key: RequestKey | None
    ) -> list[Outcome]:
        """Check every item, append the valid ones in one call, and say where each landed or why not.
        With an idempotency key, the records carry the event ids and fingerprint of :mod:`idempotency`."""
        self.ensure_started()
        checked = self._check(space, name, items, idempotency_key)
        placed = self._append(space, name, checked.batch) if checked.batch else []
        return self._settle(name, checked, placed)

    def can_produce_inline(self, space: Space, name: str) -> bool:
        """True when :meth:`produce_inline` would not block the event loop: the log started, the topic's
        partition count known and its writer committing through the committer."""
        return self._started and name in self._cache[space] and space in self._committers

    async def produce_inline(
        self, space: Space, name: str, items: list[Item], idempotency_key: RequestKey | None
    ) -> list[Outcome]:
        """:meth:`produce` from the event loop, the append queued to the committer (see
        :meth:`can_produce_inline`). The records are checked ``CHECK_SLICE`` at a time, the other
        connections served in between."""
        checked = self._checking(space, name, items, idempotency_key)
        for start in range(0, len(items), CHECK_SLICE):
            if start:
                await asyncio.sleep(0)
            self._check_slice(space, checked, items, idempotency_key, start, start + CHECK_SLICE)
        placed: list[tuple[int, int]] = []
        if checked.batch:
            try:
                placed = await self._committers[space].append(name, checked.batch)
            except PinpipeError as exc:
                raise self._append_error(space, name, checked.batch, exc) from exc
        return self._settle(name, checked, placed)

    def _check(
        self, space: Space, name: str, items: list[Item], idempotency_key: RequestKey | None
    ) -> _Checked:
        checked = self._checking(space, name, items, idempotency_key)
        self._check_slice(space, checked, items, idempotency_key, 0, len(items))
        return checked

    def _checking(
        self, space: Space, name: str, items: list[Item], idempotency_key: RequestKey | None
    ) -> _Checked:
        """The state of checking ``items``, before any is checked."""
        count = self.partitions(space, name)
        fingerprint = None if idempotency_key is None else idempotency_key.fingerprint(len(items))
        return _Checked([None] * len(items), [], [], count, kind_of_any(name), fingerprint)

    def _check_slice(
        self,
        space: Space,
        checked: _Checked,
        items: list[Item],
        idempotency_key: RequestKey | None,
        start: int,
        stop: int,
    ) -> None:
        """Check ``items[start:stop]`` into ``checked``."""
        count, kind, fingerprint = checked.count, checked.kind, checked.fingerprint
        outcomes, batch, positions = checked.outcomes, checked.batch, checked.positions
        refusal = self.logs[space].refusal
        for i in range(start, min(stop, len(items))):
            item = items[i]
            if item.problem is not None:
                outcomes[i] = Outcome(None, None, ErrorCode.INVALID, item.problem)
                continue
            if kind is not None and item.raw is None:
                problems = validate_record(kind, item.value)
                missing = identity_problem(kind, item.value)
                if missing is not None:
                    problems.append(missing)
                if problems:
                    outcomes[i] = Outcome(None, None, ErrorCode.INVALID, "; ".join(problems))
                    continue
            if item.partition is not None and item.partition >= count:
                outcomes[i] = Outcome(
                    None,
                    None,
                    ErrorCode.RECORD_PARTITION_NOT_FOUND,
                    f"partition {item.partition} does not exist",
                )
                continue
            value = item.raw if item.raw is not None else encode_json(item.value)
            if (problem := refusal(value, item.key, item.headers, item.timestamp)) is not None:
                outcomes[i] = Outcome(None, None, ErrorCode.INVALID, problem)
                continue
            event_id = None if idempotency_key is None else idempotency_key.event_id(i, first=not batch)
            batch.append(
                OutgoingRecord(
                    value, item.key, item.partition, event_id, fingerprint, item.headers, item.timestamp
                )
            )
            positions.append(i)

    def _settle(self, name: str, checked: _Checked, placed: list[tuple[int, int]]) -> list[Outcome]:
        outcomes = checked.outcomes
        for i, (partition, offset) in zip(checked.positions, placed, strict=True):
            outcomes[i] = Outcome(partition, offset)
        done = [o for o in outcomes if o is not None]
        self.metrics.count_records(name, "ok", len(checked.batch))
        for outcome in done:
            if outcome.error_code is not None:
                self.metrics.count_records(name, str(outcome.error_code))
        return done

    def _append(self, space: Space, name: str, batch: list[OutgoingRecord]) -> list[tuple[int, int]]:
        try:
            return self._writers[space].append(name, batch)
        except PinpipeError as exc:
            raise self._append_error(space, name, batch, exc) from exc

    def _append_error(
        self, space: Space, name: str, batch: list[OutgoingRecord], exc: PinpipeError
    ) -> ApiError:
        """The ApiError a failed append answers."""
        if isinstance(exc, TopicNotFoundError):
            self.forget(space, name)
            return ApiError(ErrorCode.NOT_FOUND, str(exc))
        if isinstance(exc, IdempotencyConflictError):
            self.metrics.count_records(name, str(ErrorCode.IDEMPOTENCY_KEY_REUSED), len(batch))
            return ApiError(
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                "Idempotency-Key already used for another request (other body or record count)",
            )
        if isinstance(exc, LogUnavailableError):
            self.metrics.count_records(name, str(ErrorCode.LOG_UNAVAILABLE), len(batch))
            return ApiError(
                ErrorCode.LOG_UNAVAILABLE,
                "log unavailable; the records may or may not be stored: retry with the same Idempotency-Key: "
                f"{exc}",
                {"Retry-After": "1"},
            )
        logger.error("append to %s failed: %s", name, exc)
        self.metrics.count_records(name, str(ErrorCode.LOG_FAILED), len(batch))
        return ApiError(ErrorCode.LOG_FAILED, f"log error, nothing written: {exc}")

    # admin (Kinesis CreateStream / DeleteStream)
    def create(self, space: Space, name: str, partitions: int) -> bool:
        """Create a topic/stream; False when it exists already, ApiError 40901 when the log takes the name
        for another it holds (Kafka: one differing only by ``.`` for ``_``), ApiError 40902 when
        ``api.max_streams`` exist or the name's prefix holds ``api.max_streams_per_prefix``. One at a time,
        so concurrent creates cannot overshoot the ceiling."""
        self.ensure_started()
        with self._admin_lock:
            existing = self.names(space)
            if name in existing or name in self._cache[space]:
                return False
            per_prefix = self.settings.api.max_streams_per_prefix
            tenant = owner(name)
            if sum(owner(n) == tenant for n in existing) >= per_prefix:
                raise ApiError(
                    ErrorCode.TOO_MANY_STREAMS,
                    f"prefix {tenant!r} holds its limit of {per_prefix} streams (api.max_streams_per_prefix)",
                )
            ceiling = self.settings.api.max_streams
            if len(existing) >= ceiling:
                raise ApiError(
                    ErrorCode.TOO_MANY_STREAMS,
                    f"the stream log holds its limit of {ceiling} streams (api.max_streams), counted "
                    "over every key's streams",
                )
            with log_errors():
                self.logs[space].create_topic(name, partitions)
            self.forget(space, name)
        return True

    def delete(self, space: Space, name: str) -> None:
        with self._admin_lock:
            self.partitions(space, name)
            with log_errors():
                self.logs[space].delete_topic(name)
            self.forget(space, name)


@contextlib.contextmanager
def log_errors() -> Iterator[None]:
    """A log call's failure as the API's error: 404 (no such topic), 503 with Retry-After (the log is not
    reachable), 500 (any other log error)."""
    try:
        yield
    except TopicNotFoundError as exc:
        raise ApiError(ErrorCode.NOT_FOUND, str(exc)) from exc
    except TopicCollisionError as exc:
        raise ApiError(ErrorCode.STREAM_EXISTS, str(exc)) from exc
    except LogUnavailableError as exc:
        raise ApiError(ErrorCode.LOG_UNAVAILABLE, f"log unavailable: {exc}", {"Retry-After": "1"}) from exc
    except PinpipeError as exc:
        raise ApiError(ErrorCode.LOG_FAILED, f"log error: {exc}") from exc
