"""The stream processor: consume the three streams -> clean -> commit to Delta, exactly once.

One micro-batch: what the streams hold, up to ``max_records``, read ``max_wait_s`` after the previous
micro-batch started (see :meth:`StreamProcessor.poll_batch`); decode
and clean each stream's records (bad ones to the dead-letter table); append to the stream tables and the
dead-letter table (at once, on a few threads); feed the metrics state; then commit the state table and
the changed metric tables (at once too), every commit carrying the offsets it covers as Delta
application transactions (see :mod:`pinpipe.streaming.offsets`). On start each table's own offsets say
what it already holds, the readers seek to the lowest of them, and replayed records are written only to
the tables still missing them, so a kill at any point (between or during any commits) neither duplicates
nor loses a row or a count (the metric tables are a function of the state: ones written beside a lost
save of it are written again, equal, once the records are replayed). Last the offsets are committed to
the log group (advisory, for lag). A row is thus visible in its table before the metrics count it.

Backpressure: work in flight is one micro-batch of at most ``max_records``; the pin stream is not
polled while too many pins wait for their geo events. Memory is that plus the windowed metrics state.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyarrow as pa

from pinpipe import delta, tables
from pinpipe.config import Settings
from pinpipe.errors import GroupMovedOnError, LogUnavailableError
from pinpipe.log import Log, LogReader, Record, TopicPartition, open_settings_log
from pinpipe.schema import KINDS, Kind
from pinpipe.stage import Stage
from pinpipe.streaming.decode import dead_letter_table, decode
from pinpipe.streaming.keeper import MetricsKeeper, at_once, next_offsets, open_streams
from pinpipe.streaming.lock import ProcessorLock
from pinpipe.streaming.metrics import MetricsState
from pinpipe.streaming.offsets import committed_offsets, transactions

_log = logging.getLogger(__name__)

GROUP = "pinpipe-stream"
IDLE_POLL_S = 0.005
"""How often an idle processor looks for new records (a look at an unchanged log is one cheap query per
stream)."""
WRITERS = 4
"""Threads making the commits of one step of a micro-batch (stream tables, metric tables) at once."""
STATE_SAVE_S = 1.0
"""The metrics state (all of it, as JSON: at 10,000 events/s mostly the last seconds' geo events kept for
pairing, 3 MB) is saved at most once a second while records flow, and on every idle micro-batch and on
stopping; after a crash the metrics replay at most that second from the log."""
UNTIL_IDLE_PATIENCE_S = 30.0
"""How long ``until_idle`` waits for a log out of reach before it fails: it cannot end while it does not
know the streams' ends. Running on, the processor waits for the log as long as it takes."""
TIDY_EVERY = 200
"""Micro-batches between clean-ups: the appended tables' small files compacted and old files of the
overwritten metric tables removed, a table after each micro-batch (:meth:`StreamProcessor.tidy_steps`)."""


@dataclass
class StreamSummary:
    """What one run of the processor did."""

    batches: int = 0
    records: int = 0
    rows: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    dead_letters: int = 0
    seconds: float = 0.0
    pending_pins: int = 0


class StreamProcessor(Stage):
    """Micro-batch processor of the ``streaming-<prefix>-pin|geo|user`` streams into Delta tables.

    Built, it holds configuration only; :meth:`start` (or ``with``) takes the processor lock, opens the
    log (unless one is given), reads what each table holds and positions a reader per stream;
    :meth:`close` releases them."""

    log: Log
    streams: dict[Kind, str]
    partitions: dict[Kind, int]
    all_tps: list[TopicPartition]
    done: dict[str, dict[TopicPartition, int]]
    metrics: MetricsKeeper
    readers: dict[Kind, LogReader]
    _pool: ThreadPoolExecutor

    def __init__(self, settings: Settings, log: Log | None = None) -> None:
        self.settings = settings
        self.max_records = settings.stream.max_records
        self.max_wait_s = settings.stream.max_wait_s
        self._given_log = log
        self.table_urls: dict[Kind, str] = {k: tables.stream_table(settings, k) for k in KINDS}
        self.dead_url = tables.dead_letter_table(settings)
        self.open_tables = delta.TableCache()
        self.summary = StreamSummary()
        self._last_batch = 0.0
        self._group_committed: dict[TopicPartition, int] = {}
        self._tidying: list[Callable[[], None]] = []

    def _open(self, acquired: contextlib.ExitStack) -> None:
        settings = self.settings
        acquired.enter_context(ProcessorLock(settings))
        if self._given_log is None:
            self.log = open_settings_log(settings, settings.stream_log_url)
            acquired.callback(self.log.close)
        else:
            self.log = self._given_log
        self.streams, self.partitions = open_streams(settings, self.log)
        self.all_tps = [(self.streams[k], p) for k in KINDS for p in range(self.partitions[k])]
        # what each output already holds: per table, next offset per (stream, partition)
        self.done = {k: committed_offsets(self.table_urls[k], self._tps(k)) for k in KINDS}
        self.done["dead"] = committed_offsets(self.dead_url, self.all_tps)
        self.metrics = MetricsKeeper(
            settings, self.streams, self.partitions, self.open_tables, save_every_s=STATE_SAVE_S
        )
        self.readers = {}
        for kind, stream in self.streams.items():
            reader = self.readers[kind] = self.log.reader(GROUP, [stream])
            acquired.callback(reader.close)
            for tp in self._tps(kind):
                start = min(self.done[kind][tp], self.metrics.done[tp])
                reader.seek(stream, tp[1], start)
                self.metrics.position[tp] = start
        self._pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="pinpipe-delta")
        acquired.callback(self._pool.shutdown, wait=True)

    def _tps(self, kind: Kind) -> list[TopicPartition]:
        return [(self.streams[kind], p) for p in range(self.partitions[kind])]

    @property
    def state(self) -> MetricsState:
        return self.metrics.state

    # ---- polling -----------------------------------------------------------------------------
    def poll_batch(self) -> dict[Kind, list[Record]]:
        """One micro-batch: what the streams hold (up to ``max_records``), read ``max_wait_s`` after the
        previous micro-batch started (a processing-time trigger, as Spark's) or, when nothing was there,
        as soon as a record arrives (looking every ``IDLE_POLL_S``); empty after ``max_wait_s`` more.

        A processor that keeps up makes at most one micro-batch per ``max_wait_s`` and a record waits at
        most that long for its micro-batch; one that falls behind reads its whole backlog at once, so
        micro-batches grow with the backlog instead of their fixed cost (the commits) limiting the rate."""
        batch: dict[Kind, list[Record]] = {k: [] for k in KINDS}
        due = self._last_batch + self.max_wait_s - time.monotonic()
        if due > 0:
            time.sleep(due)
        deadline = time.monotonic() + self.max_wait_s
        while True:
            total = 0
            for kind in KINDS:
                if kind == "pin" and self.state.pending_pins > 10 * self.max_records:
                    continue
                try:
                    records = self.readers[kind].poll(self.max_records - total, 0)
                except LogUnavailableError as exc:  # raised before taking any record: nothing is lost
                    _log.warning("stream %s not read, tried again next micro-batch: %s", kind, exc)
                    continue
                batch[kind].extend(records)
                total += len(records)
                if total >= self.max_records:
                    break
            left = deadline - time.monotonic()
            if total or left <= 0:
                break
            time.sleep(min(IDLE_POLL_S, left))
        self._last_batch = time.monotonic()
        return batch

    # ---- one micro-batch ---------------------------------------------------------------------
    def process(self, batch: dict[Kind, list[Record]]) -> None:
        checked_at = self.metrics.check_ends(self.log)
        nexts = next_offsets(r for records in batch.values() for r in records)
        decoded = {kind: decode(kind, records) for kind, records in batch.items() if records}
        # 1. stream tables and 2. dead letters: independent commits, made at once
        commits: list[tuple[str, pa.Table, dict[TopicPartition, int]]] = []
        for kind, dec in decoded.items():
            done = self.done[kind]
            advanced = {tp: v for tp, v in nexts.items() if tp[0] == self.streams[kind] and v > done[tp]}
            if advanced:
                commits.append((kind, _rows_from(dec.cleaned, self.streams[kind], done), advanced))
        done = self.done["dead"]
        dead = [
            d
            for dec in decoded.values()
            for d in dec.dead
            if d["offset"] >= done[(d["stream"], d["partition"])]
        ]
        if dead:
            advanced = {tp: v for tp, v in nexts.items() if v > done[tp]}
            commits.append(("dead", dead_letter_table(dead), advanced))
        urls: dict[str, str] = {"dead": self.dead_url, **{k: u for k, u in self.table_urls.items()}}
        at_once(
            self._pool,
            [
                partial(delta.append, urls[name], rows, transactions(advanced), self.open_tables)
                for name, rows, advanced in commits
            ],
        )
        for name, rows, advanced in commits:
            self.done[name].update(advanced)
            if name == "dead":
                self.summary.dead_letters += rows.num_rows
            else:
                self.summary.rows[name] += rows.num_rows
        # 3. metrics state and tables, then the advisory group commit
        self.metrics.step(batch, decoded, nexts, checked_at)
        self.metrics.commit(self._pool, save=not any(batch.values()))
        self._commit_group()
        self.summary.batches += 1
        self.summary.records += sum(len(r) for r in batch.values())
        if not self._tidying and self.summary.batches % TIDY_EVERY == 0:
            self._tidying = self.tidy_steps()
        if self._tidying:
            self._tidying.pop(0)()

    def _commit_group(self) -> None:
        """Commit to the log group, for lag, the offsets that both a partition's table and the saved
        metrics state cover, where they moved since the last commit that went through. The tables hold
        the offsets that count, so a failure (a broker down, the group rebalancing) is only logged: the
        next micro-batch tries again."""
        covered = {
            tp: min(self.done[self.metrics.kinds[tp[0]]][tp], self.metrics.done[tp]) for tp in self.all_tps
        }
        for kind, reader in self.readers.items():
            mine = {
                tp: v
                for tp, v in covered.items()
                if tp[0] == self.streams[kind] and v != self._group_committed.get(tp, 0)
            }
            if not mine:
                continue
            try:
                reader.commit(mine)
            except (LogUnavailableError, GroupMovedOnError) as exc:
                _log.warning("log group offsets not committed, retried with the next micro-batch: %s", exc)
                continue
            self._group_committed.update(mine)

    def tidy_steps(self) -> list[Callable[[], None]]:
        """The clean-up, a step per table: compact the appended tables' small files, then drop the
        overwritten tables' old ones. One step runs after each micro-batch, so none waits for the whole
        clean-up (0.5 s at 1,000 events/s on a busy machine: p99 is about one micro-batch in a hundred)."""
        appended = [*self.table_urls.values(), self.dead_url]
        compacts = [partial(delta.compact, url, self.open_tables) for url in appended]
        return [*compacts, *self.metrics.tidy_steps()]

    # ---- driving -----------------------------------------------------------------------------
    def caught_up(self) -> bool:
        return self.metrics.caught_up()

    def run(
        self,
        until_idle: bool = False,
        stop: Callable[[], bool] | None = None,
        on_batch: Callable[[StreamSummary], Any] | None = None,
    ) -> StreamSummary:
        self._require_started()
        started = time.monotonic()
        if self.summary.batches == 0:
            self.process({k: [] for k in KINDS})
        while not (stop and stop()):
            batch = self.poll_batch()
            empty = not any(batch.values())
            self.process(batch)
            if on_batch:
                on_batch(self.summary)
            if until_idle and empty and self.caught_up() and self.state.pending_pins == 0:
                break
            since = self.metrics.unread_since
            if until_idle and since is not None and time.monotonic() - since > UNTIL_IDLE_PATIENCE_S:
                raise LogUnavailableError(
                    f"the streams' end offsets could not be read for {UNTIL_IDLE_PATIENCE_S:.0f} s: "
                    "not known to be caught up"
                )
        self.metrics.commit(self._pool, save=True)  # the state of the last micro-batches
        self.summary.seconds = time.monotonic() - started
        self.summary.pending_pins = self.state.pending_pins
        return self.summary


def _rows_from(cleaned: pa.Table, stream: str, done: dict[TopicPartition, int]) -> pa.Table:
    """The rows not yet in the table: offset at or above the table's version for their partition."""
    keep = [
        o >= done[(stream, p)]
        for p, o in zip(
            cleaned.column("_partition").to_pylist(), cleaned.column("_offset").to_pylist(), strict=True
        )
    ]
    return cleaned if all(keep) else cleaned.filter(pa.array(keep, pa.bool_()))


def run_stream(
    settings: Settings,
    until_idle: bool = True,
    log: Log | None = None,
    stop: Callable[[], bool] | None = None,
    on_batch: Callable[[StreamSummary], Any] | None = None,
) -> StreamSummary:
    """Run the processor (until caught up and idle, or until ``stop()``) and say what it did."""
    with StreamProcessor(settings, log) as processor:
        return processor.run(until_idle=until_idle, stop=stop, on_batch=on_batch)
