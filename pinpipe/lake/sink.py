"""The lake sink: the batch topics into lake objects, exactly once (the Kafka Connect S3 sink's role).

Why it is exactly once, even under ``kill -9``:

- **Boundaries are a function of the records alone.** A file starts at the first record after the
  previous file and is cut before a record when the file already holds ``flush_size`` records, when
  that record's time (``Record.timestamp``) is at or past the first record's time + ``rotate_interval_s``,
  when it would push the file past ``max_object_bytes`` of values, or when its offset does not follow
  the previous one (a gap). No wall clock is involved, so a replay cuts the same files.
- **Objects are written atomically, then offsets committed.** ``ObjectStore.put`` is all or nothing;
  the group offset moves only past objects that are durably written (at most every
  ``commit_interval_s``: objects written since the last commit are found again as below).
- **The lake is authoritative past the committed offset.** On start, and whenever a new file would
  begin while recovering, the sink looks for an object at that start offset; if one exists (written
  before a crash, not yet committed) its record count tells where it ends, and the sink continues after
  it without rewriting it. Files are contiguous in offsets, so the count is exact.
- **The idle flush changes when a file is written, never what is in it.** A pending file is written
  early only when the rotate rule is on, the partition is caught up with the log's end offset, and the
  wall clock has passed the file's rotate deadline by ``idle_flush_s``: any record still to come then has a
  time past the deadline and would be cut into the next file anyway. This assumes the log's clock is within
  ``idle_flush_s`` of the sink's and appends become visible within that time. With the rotate rule off the
  idle flush never fires (a partial file would change content); ``until_idle`` and shutdown behave as below.
- **A log that is briefly away changes nothing.** A commit the log cannot take (a Kafka broker holding
  the group coordinator died; another takes over within seconds) stays pending for the next commit, and
  an end-offset lookup that fails only postpones an idle flush or the idle check.
- ``run(until_idle=True)`` stops once every partition is caught up and then writes the partial files
  too (everything consumed is in the lake); their content depends on where the log ended, as in Kafka
  Connect. A stop request (SIGTERM) writes only files that are complete by the rules above, commits,
  and leaves the rest to be read again.

Objects are put by one background thread, in the order they were cut, so fsyncs overlap with reading
the log while each partition's objects still land in offset order (a crash leaves a prefix of them).

Several workers (Kafka): sink processes in one group share the partitions through Kafka's group protocol
(:mod:`pinpipe.log.kafka.group`). Since boundaries depend only on the records and the start offset, and
every owner starts at the committed offset (an object boundary) and looks in the lake there, a rebalance
never changes what the lake holds: a worker losing a partition waits for its queued puts, commits them,
and drops its unwritten records (never writes a partial file); the new owner reads them again. A
worker killed mid-object leaves the same state as a crash of the only sink. Two owners of one partition
for a moment (a stalled worker not yet dropped) write the same objects under the same names. A worker
whose consumer Kafka fenced (a fatal error) loses all its partitions at once, like a killed worker, and
joins again with a new consumer: its queued puts still land (the same bytes any owner writes there).

The embedded log has no group protocol: one sink per log directory and group; a second one is refused.

Memory: at most ``flush_size`` records (and ``max_object_bytes``) per partition, one poll, and
``put_queue`` encoded objects waiting for the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pinpipe.errors import GroupMovedOnError, LogError, LogUnavailableError, ObjectNotFoundError
from pinpipe.lake.formats import EXTENSIONS, LakeFormat, format_of_key, lake_format, object_key
from pinpipe.lake.sink_options import SinkOptions as SinkOptions  # re-exported: the sink's API
from pinpipe.lake.sink_options import SinkSummary as SinkSummary
from pinpipe.lake.sink_options import TopicSummary as TopicSummary
from pinpipe.lake.sink_puts import OrderedPuts
from pinpipe.lake.store import ObjectStore
from pinpipe.log.base import Log, LogReader, Record, TopicPartition
from pinpipe.stage import Stage
from pinpipe.stopping import stop_on_signals

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pinpipe.config import Settings

GROUP = "pinpipe-lake-sink"
"""The sink's consumer group."""


@dataclass
class _PartitionState:
    topic: str
    partition: int
    position: int = 0
    """Next offset to consume (known from records seen or the committed offset)."""
    covered: int | None = None
    """Every offset below this is in the lake; what to commit."""
    committed: int | None = None
    recovering: bool = True
    values: list[bytes] = field(default_factory=list)
    first_offset: int = 0
    last_offset: int = 0
    first_time: float = 0.0
    value_bytes: int = 0


class LakeSink(Stage):
    """Consumes ``topics`` as ``group`` (default :data:`GROUP`) and writes objects into ``store``;
    ``instance_id`` names the worker for Kafka's static group membership (ignored on other logs).

    Built, it holds configuration only; :meth:`start` (or ``with``) creates the topics, takes the group's
    lock (embedded), opens the reader and starts the put thread; :meth:`close` releases them."""

    _reader: LogReader
    _puts: OrderedPuts

    def __init__(
        self,
        log: Log,
        store: ObjectStore,
        topics: Sequence[str],
        options: SinkOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
        partitions: int | None = None,
        group: str = GROUP,
        instance_id: str | None = None,
    ) -> None:
        self.log = log
        self.store = store
        self.topics = list(topics)
        self.options = options or SinkOptions()
        self.format: LakeFormat = lake_format(self.options.format)
        self.clock = clock
        self.partitions = partitions
        self.group = group
        self.instance_id = instance_id
        self.summary = SinkSummary(topics={t: TopicSummary() for t in self.topics})
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._dirty: set[TopicPartition] = set()
        self._last_commit = time.monotonic()
        self._states: dict[TopicPartition, _PartitionState] = {}
        self._shared = hasattr(log, "group_reader")
        """Partitions come and go with the group's assignment (Kafka) rather than all being ours."""
        self._assigned_once = False

    def _open(self, acquired: contextlib.ExitStack) -> None:
        existing = self.log.topics()
        for topic in self.topics:
            if topic not in existing:
                self.log.create_topic(topic, self.partitions)
        if self._shared:
            group_reader = self.log.group_reader  # type: ignore[attr-defined]
            self._reader = group_reader(self.group, self.topics, self, self.instance_id)
        else:
            acquired.enter_context(_exclusive(self.log, self.group))
            for topic in self.topics:
                committed = self.log.committed(self.group, topic)
                for p in self.log.end_offsets(topic):
                    self._states[(topic, p)] = _PartitionState(
                        topic, p, position=committed.get(p, 0), committed=committed.get(p)
                    )
            self._reader = self.log.reader(self.group, self.topics)
        acquired.callback(self._reader.close)
        self._puts = OrderedPuts(self.store, self.options.put_queue)
        acquired.callback(self._puts.close)

    # control
    def stop(self) -> None:
        """Ask :meth:`run` to finish its poll, write what is complete, commit and return."""
        self._stop.set()

    # the group's assignment (Kafka), called from inside a poll
    def assigned(self, offsets: Mapping[TopicPartition, int | None]) -> None:
        """Partitions now ours start afresh at the committed offset, looking in the lake first."""
        self._assigned_once = True
        for (topic, p), offset in offsets.items():
            self._states[(topic, p)] = _PartitionState(topic, p, position=offset or 0, committed=offset)

    def revoked(self, partitions: Sequence[TopicPartition], lost: bool) -> None:
        """Commit what is in the lake (unless another member owns the partitions already), then forget
        them: unwritten records are dropped, never written as a partial file. Lost partitions mean the
        member joins the group again: it is not caught up before its new assignment arrives."""
        if lost:
            self._assigned_once = False
        else:
            try:
                self._puts.drain()
                self._commit()
            except LogError:  # fenced or broker trouble: the next owner finds the objects in the lake
                pass
        with self._lock:
            for tp in partitions:
                self._states.pop(tp, None)
                self._dirty.discard(tp)

    # the loop
    def run(
        self, until_idle: bool = False, on_progress: Callable[[SinkSummary], None] | None = None
    ) -> SinkSummary:
        """Sink until stopped, or with ``until_idle`` until every partition is caught up and written."""
        self._require_started()
        while not self._stop.is_set():
            consumed = self.step()
            if until_idle and not consumed and self._caught_up():
                self._flush_all()
                self._puts.drain()
                self._commit(final=True)
                return self.summary
            if on_progress is not None and consumed:
                on_progress(self.summary)
        self._idle_flush(self._idle_candidates())
        self._puts.drain()
        self._commit(final=True)
        self.summary.stopped = True
        return self.summary

    def step(self) -> int:
        """One poll: consume, write the files that are complete, commit. Returns the records polled."""
        self._require_started()
        records = self._reader.poll(self.options.poll_records, self.options.poll_timeout_s)
        for record in records:
            self._consume(record)
        self._idle_flush(self._idle_candidates())
        if time.monotonic() - self._last_commit >= self.options.commit_interval_s:
            self._commit()
        return len(records)

    def _state(self, record: Record) -> _PartitionState | None:
        tp = (record.topic, record.partition)
        state = self._states.get(tp)
        if state is None and self._shared:  # not ours (any more)
            return None
        if state is None:  # a partition added after start
            state = self._states[tp] = _PartitionState(record.topic, record.partition)
        return state

    def _consume(self, record: Record) -> None:
        state = self._state(record)
        if state is None:
            return
        if record.offset < state.position:  # already handled, or inside a recovered object
            return
        state.position = record.offset + 1
        if not state.values and state.recovering:
            found = self._probe(state, record.offset)
            if found:
                return
            state.recovering = False
        if state.values and self._cuts_before(state, record):
            self._write(state)
        if not state.values:
            state.first_offset = record.offset
            state.first_time = record.timestamp
            state.value_bytes = 0
        state.values.append(record.value)
        state.last_offset = record.offset
        state.value_bytes += len(record.value) + 1
        if len(state.values) >= self.options.flush_size:
            self._write(state)

    def _cuts_before(self, state: _PartitionState, record: Record) -> bool:
        opts = self.options
        return (
            len(state.values) >= opts.flush_size
            or record.offset != state.last_offset + 1
            or (opts.rotate_interval_s > 0 and record.timestamp >= state.first_time + opts.rotate_interval_s)
            or state.value_bytes + len(record.value) + 1 > opts.max_object_bytes
        )

    def _probe(self, state: _PartitionState, offset: int) -> bool:
        """Is there already an object starting at ``offset``? Then skip past it and say so."""
        for extension in EXTENSIONS:
            key = object_key(state.topic, state.partition, offset, extension)
            if not self.store.exists(key):
                continue
            try:
                data = self.store.get(key)
            except ObjectNotFoundError:
                continue
            count = format_of_key(key).count(data)
            if count == 0:  # never written by a sink: replace it
                continue
            end = offset + count
            state.position = end
            with self._lock:
                self._cover(state, end)
                self.summary.topics[state.topic].recovered_objects += 1
            self._reader.seek(state.topic, state.partition, end)
            return True
        return False

    def _write(self, state: _PartitionState) -> None:
        data = self.format.encode(state.values)
        key = object_key(state.topic, state.partition, state.first_offset, self.format.extension)
        records, end = len(state.values), state.last_offset + 1

        def done() -> None:  # the object is durable: it may be committed now
            with self._lock:
                stats = self.summary.topics[state.topic]
                stats.objects += 1
                stats.records += records
                stats.bytes += len(data)
                self._cover(state, end)

        self._puts.submit(key, data, done)
        state.values = []
        state.value_bytes = 0

    def _cover(self, state: _PartitionState, end: int) -> None:
        """Called with the lock held."""
        state.covered = end
        self._dirty.add((state.topic, state.partition))

    def _commit(self, final: bool = False) -> None:
        """Commit what is in the lake. A periodic commit the log cannot take now (a Kafka broker holding
        the group coordinator just died) stays pending for the next one: the lake is authoritative past
        the committed offset anyway. A ``final`` one (caught up, stopping) waits up to
        ``commit_patience_s`` for the log, then raises."""
        self._puts.check()
        self._last_commit = time.monotonic()
        with self._lock:
            offsets = {
                tp: state.covered
                for tp in self._dirty
                if (state := self._states.get(tp)) is not None
                and state.covered is not None
                and state.covered != state.committed
            }
            self._dirty.clear()
        if not offsets:
            return
        deadline = time.monotonic() + (self.options.commit_patience_s if final else 0.0)
        while True:
            try:
                self._reader.commit(offsets)
                break
            except GroupMovedOnError as exc:  # its new owner rewrites the same objects from the last commit
                _log.warning("offsets not committed, the group moved on: %s", exc)
                return
            except LogUnavailableError:
                if final and time.monotonic() >= deadline:
                    raise
                if not final:
                    with self._lock:
                        self._dirty.update(offsets)
                    return
                time.sleep(0.5)
        for tp, offset in offsets.items():
            if tp in self._states:
                self._states[tp].committed = offset

    # idle flush and catching up
    def _idle_candidates(self) -> list[_PartitionState]:
        """Pending files whose rotate deadline passed ``idle_flush_s`` ago."""
        interval = self.options.rotate_interval_s
        if interval <= 0:
            return []
        now = self.clock()
        return [
            s
            for s in self._states.values()
            if s.values and now >= s.first_time + interval + self.options.idle_flush_s
        ]

    def _idle_flush(self, candidates: list[_PartitionState]) -> None:
        ends: dict[str, dict[int, int]] = {}
        for state in candidates:
            if state.topic not in ends:
                try:
                    ends[state.topic] = self.log.end_offsets(state.topic)
                except LogUnavailableError:  # a partition between leaders: look again next poll
                    return
            if state.position >= ends[state.topic].get(state.partition, 0):
                self._write(state)

    def _caught_up(self) -> bool:
        try:
            return self._all_caught_up()
        except LogUnavailableError:  # a partition between leaders: not known to be caught up
            return False

    def _all_caught_up(self) -> bool:
        if self._shared:
            return self._assigned_once and self._owned_caught_up()
        for topic in self.topics:
            for p, end in self.log.end_offsets(topic).items():
                state = self._states.get((topic, p))
                if state is None:
                    if end > 0:
                        self._states[(topic, p)] = _PartitionState(topic, p)
                        return False
                    continue
                if state.position < end:
                    return False
        return True

    def _owned_caught_up(self) -> bool:
        ends: dict[str, dict[int, int]] = {}
        for state in list(self._states.values()):
            if state.topic not in ends:
                ends[state.topic] = self.log.end_offsets(state.topic)
            if state.position < ends[state.topic].get(state.partition, 0):
                return False
        return True

    def _flush_all(self) -> None:
        for state in self._states.values():
            if state.values:
                self._write(state)


@contextlib.contextmanager
def _exclusive(log: Log, group: str) -> Iterator[None]:
    """On a log in a local directory (embedded), a lock held while the sink runs: a second sink of the
    same group would read the same partitions and race on the commits."""
    directory = getattr(log, "directory", None)
    if directory is None:
        yield
        return
    with open(os.path.join(directory, f"sink-{group}.lock"), "wb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LogError(
                f"another lake sink of group {group!r} is running on {log.url}: one sink per embedded log "
                "(several sink workers need Kafka)"
            ) from None
        yield


def run_sink(
    settings: Settings,
    until_idle: bool = True,
    *,
    flush_size: int | None = None,
    rotate_interval_s: float | None = None,
    idle_flush_s: float | None = None,
    format: str | None = None,
    log: Log | None = None,
    store: ObjectStore | None = None,
    handle_signals: bool = False,
    on_progress: Callable[[SinkSummary], None] | None = None,
) -> SinkSummary:
    """Sink the three batch topics of ``settings.prefix`` from the configured log into the lake.

    ``log``/``store`` reuse already open ones (the demo passes its log); otherwise they are opened from
    ``settings`` and closed at the end. ``handle_signals`` makes SIGTERM and SIGINT stop gracefully.
    """
    from pinpipe.lake.store import open_store
    from pinpipe.log import open_settings_log
    from pinpipe.schema import topic_names

    lake = settings.lake
    options = SinkOptions(
        flush_size=lake.flush_size if flush_size is None else flush_size,
        rotate_interval_s=lake.rotate_interval_s if rotate_interval_s is None else rotate_interval_s,
        idle_flush_s=lake.idle_flush_s if idle_flush_s is None else idle_flush_s,
        format=lake.format if format is None else format,
    )
    own_log = log is None
    with stop_on_signals(enabled=handle_signals) as stop:  # from the start: a stop while starting is a stop
        the_log = open_settings_log(settings) if log is None else log
        try:
            sink = LakeSink(
                the_log,
                store or open_store(settings.lake_url),
                list(topic_names(settings.prefix).values()),
                options,
                partitions=settings.log.partitions,
                instance_id=lake.group_instance_id or None,
            )
            stop.call_on_stop(sink.stop)
            with sink:
                return sink.run(until_idle=until_idle, on_progress=on_progress)
        finally:
            if own_log:
                the_log.close()
