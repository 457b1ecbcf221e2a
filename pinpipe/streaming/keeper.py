"""The metrics half of a stream processor, one code path for both stream engines.

:class:`MetricsKeeper` restores :class:`~pinpipe.streaming.metrics.MetricsState` from the state table,
feeds it each micro-batch (records below the offsets the saved state covers are skipped, so a replayed
record never counts twice), lets the pin-geo pairing decide what it can, then saves the state with the
offsets it now covers (Delta application transactions, in the same commit) and rewrites the metric tables
that changed, these commits at once. The embedded processor and the Spark Structured Streaming job both
drive it: they differ only in how they read and clean records, so their metrics are equal by
construction (docs/metrics.md).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial

import pyarrow as pa
import pyarrow.compute as pc

from pinpipe import delta, tables
from pinpipe.config import Settings
from pinpipe.errors import LogUnavailableError
from pinpipe.log import Log, Record, TopicPartition
from pinpipe.schema import KINDS, Kind, stream_name
from pinpipe.streaming.decode import Decoded
from pinpipe.streaming.metrics import MetricsConfig, MetricsState
from pinpipe.streaming.offsets import committed_offsets, transactions
from pinpipe.streaming.views import BUILDERS, lag_table

CAUGHT_UP_MARGIN_S = 2.0
"""A caught-up partition vouches for arrivals up to this long before the check (appends in flight)."""
STATE_SCHEMA = pa.schema([("state", pa.string()), ("updated_at", pa.timestamp("us", tz="UTC"))])
METRIC_COLUMNS: dict[str, list[str]] = {
    "geo": ["ind", "timestamp", "country"],
    "pin": ["ind", "poster_name", "follower_count", "category"],
}
"""The cleaned columns the metrics read, per stream kind (geo is fed before pin, as listed)."""

_log = logging.getLogger(__name__)


def at_once(pool: ThreadPoolExecutor, commits: list[Callable[[], None]]) -> None:
    """Make commits to different tables at the same time (delta-rs writes without holding the GIL);
    wait for all of them before raising the first error, so none is still running after a failure."""
    if len(commits) <= 1:
        for commit in commits:
            commit()
        return
    futures = [pool.submit(commit) for commit in commits]
    wait(futures)
    for future in futures:
        future.result()


def open_streams(settings: Settings, log: Log) -> tuple[dict[Kind, str], dict[Kind, int]]:
    """A stream processor's three streams (created when missing) and their partition counts."""
    streams = {k: stream_name(settings.prefix, k) for k in KINDS}
    partitions = {}
    for kind, stream in streams.items():
        log.create_topic(stream, settings.log.partitions)
        partitions[kind] = len(log.end_offsets(stream))
    return streams, partitions


def next_offsets(records: Iterable[Record]) -> dict[TopicPartition, int]:
    """Per (stream, partition) of ``records``: the offset after the last one."""
    nexts: dict[TopicPartition, int] = {}
    for r in records:
        tp = (r.topic, r.partition)
        nexts[tp] = max(nexts.get(tp, 0), r.offset + 1)
    return nexts


class MetricsKeeper:
    """Metrics state, its table and the metric tables of one stream processor (either engine)."""

    def __init__(
        self,
        settings: Settings,
        streams: Mapping[Kind, str],
        partitions: Mapping[Kind, int],
        cache: delta.TableCache,
        save_every_s: float = 0.0,
    ) -> None:
        self.settings = settings
        self.save_every_s = save_every_s
        """The state is saved at most this often (0: after every step). Records the saved state does not
        cover are replayed after a restart, so a longer interval costs only replay: a reader that does
        not seek to the saved state's offsets (Spark's) needs every step saved."""
        self.kinds: dict[str, Kind] = {stream: kind for kind, stream in streams.items()}
        self.cache = cache
        self.config = MetricsConfig(
            watermark_s=settings.stream.watermark_s,
            top_k=settings.stream.top_k,
            event_time=settings.stream.event_time,
            partitions=max(partitions["pin"], partitions["geo"]),
        )
        self.url = tables.metrics_table(settings, "state")
        tps = [(streams[k], p) for k in KINDS for p in range(partitions[k])]
        self.done: dict[TopicPartition, int] = committed_offsets(self.url, tps)
        """Per (stream, partition): the next offset the saved state has consumed."""
        self.state = self._load()
        self.position: dict[TopicPartition, int] = dict(self.done)
        """Per (stream, partition): the next offset the processor will read."""
        self.ends: dict[TopicPartition, int] = {}
        self._ends_at = 0.0
        """When :attr:`ends` were read."""
        self.unread_since: float | None = None
        """Since when (monotonic) the end offsets could not be read; None while they can."""
        self._written: dict[str, pa.Table] = {}
        self._unsaved: dict[TopicPartition, int] | None = None
        """The offsets the state stepped to covers beyond the saved ones, until :meth:`commit` saves it."""
        self._stepped_at = 0.0
        self._saved_at = -math.inf

    def _load(self) -> MetricsState:
        data = delta.read_table_if_exists(self.url)
        if data is None or data.num_rows == 0:
            return MetricsState(self.config)
        return MetricsState.from_json(self.config, data.column("state")[0].as_py())

    def check_ends(self, log: Log) -> float:
        """Read the streams' end offsets (for lag and caught-up); returns the wall-clock time before.

        When a partition is out of reach (between leaders after a broker died) the ends read last are
        kept and their time returned: decisions made on them stay true, and the next micro-batch looks
        again."""
        checked_at = time.time()
        try:
            ends = {(stream, p): end for stream in self.kinds for p, end in log.end_offsets(stream).items()}
        except LogUnavailableError as exc:
            _log.warning("end offsets not read, the last ones kept: %s", exc)
            if self.unread_since is None:
                self.unread_since = time.monotonic()
            return self._ends_at
        self.ends.update(ends)
        self._ends_at = checked_at
        self.unread_since = None
        return checked_at

    def caught_up(self) -> bool:
        """Read up to the ends last read, and those are current (a log out of reach may hold more)."""
        return self.unread_since is None and all(
            self.position.get(tp, 0) >= end for tp, end in self.ends.items()
        )

    # ---- one micro-batch ---------------------------------------------------------------------
    def step(
        self,
        batch: Mapping[Kind, list[Record]],
        decoded: Mapping[Kind, Decoded],
        nexts: Mapping[TopicPartition, int],
        checked_at: float,
    ) -> None:
        """Feed a micro-batch (``batch``: every record read, ``decoded``: the valid ones and their
        cleaned rows, ``nexts``: :func:`next_offsets` of ``batch``) and settle; :meth:`commit` then saves
        the state and the metric tables.

        ``checked_at``: when the end offsets were read (:meth:`check_ends`); a partition read to its end
        then has no arrival left before it, which lets pins with no geo event be decided."""
        advanced = {tp: v for tp, v in nexts.items() if v > self.done[tp]}
        before = self.state.pending_pins
        self._feed(batch, decoded)
        for tp, end in self.ends.items():
            if self.position.get(tp, 0) >= end or nexts.get(tp, -1) >= end:
                self.state.caught_up(self.kinds[tp[0]], tp[1], checked_at - CAUGHT_UP_MARGIN_S)
        self.state.settle()
        if advanced or self.state.pending_pins != before:
            self._unsaved = {**(self._unsaved or {}), **advanced}
        self._stepped_at = checked_at
        for tp, v in nexts.items():
            self.position[tp] = max(self.position.get(tp, 0), v)

    def _feed(self, batch: Mapping[Kind, list[Record]], decoded: Mapping[Kind, Decoded]) -> None:
        done = self.done
        for kind, records in batch.items():
            fresh = [r.timestamp for r in records if r.offset >= done[(r.topic, r.partition)]]
            self.state.arrived(kind, fresh)
        adders: tuple[tuple[Kind, Callable[..., None]], ...] = (
            ("geo", self.state.add_geo),
            ("pin", self.state.add_pin),
        )
        for kind, add in adders:
            dec = decoded.get(kind)
            if dec is None:
                continue
            cols = dec.cleaned.select(METRIC_COLUMNS[kind])
            if kind == "geo":  # event time as epoch seconds of the naive timestamp
                micros = pc.cast(cols.column("timestamp"), pa.int64())
                # unsafe: beyond 2**53 us (before 1685, after 2255) a double rounds, it must not refuse
                seconds = pc.divide(pc.cast(micros, pa.float64(), safe=False), 1_000_000.0)
                cols = cols.set_column(1, "timestamp", seconds)
            for record, row in zip(dec.records, cols.to_pylist(), strict=True):
                if record.offset >= done[(record.topic, record.partition)]:
                    add(record.partition, record.offset, record.timestamp, row)

    # ---- metric tables -----------------------------------------------------------------------
    def views(self) -> dict[str, pa.Table]:
        """Every metric table as of now: the state's, and ``lag`` from the end offsets last read."""
        views = {name: build(self.state) for name, build in BUILDERS.items()}
        views["lag"] = lag_table(
            [
                {
                    "stream": tp[0],
                    "partition": tp[1],
                    "end_offset": end,
                    "processed_offset": self.position.get(tp, 0),
                    "lag": max(0, end - self.position.get(tp, 0)),
                }
                for tp, end in self.ends.items()
            ]
        )
        return views

    def commit(self, pool: ThreadPoolExecutor, save: bool = False) -> None:
        """Rewrite the metric tables that changed since last written and, when ``save`` or
        ``save_every_s`` has passed since the last save, save the state stepped to with the offsets it
        covers, all at once: the metric tables are a function of the state, so one written beside a
        save of the state that a crash lost is written again, equal, once the restarted processor has
        replayed the same records."""
        changed = {
            name: view
            for name, view in self.views().items()
            if (previous := self._written.get(name)) is None or not previous.equals(view)
        }
        commits: list[Callable[[], None]] = [
            partial(delta.overwrite, tables.metrics_table(self.settings, name), view, cache=self.cache)
            for name, view in changed.items()
        ]
        covered = self._unsaved
        if covered is not None and (save or time.monotonic() - self._saved_at >= self.save_every_s):
            state = pa.Table.from_pylist(
                [{"state": self.state.to_json(), "updated_at": int(self._stepped_at * 1_000_000)}],
                schema=pa.schema([("state", pa.string()), ("updated_at", pa.int64())]),
            ).cast(STATE_SCHEMA)
            commits.append(partial(delta.overwrite, self.url, state, transactions(covered), self.cache))
        else:
            covered = None
        at_once(pool, commits)
        self._written.update(changed)
        if covered is not None:
            self.done.update(covered)
            self._unsaved = None
            self._saved_at = time.monotonic()

    def tidy(self) -> None:
        """Drop the old files of the overwritten metric and state tables."""
        for tidy in self.tidy_steps():
            tidy()

    def tidy_steps(self) -> list[Callable[[], None]]:
        """:meth:`tidy` as one step per table (a caller may spread them over micro-batches)."""
        return [
            partial(delta.tidy, tables.metrics_table(self.settings, name), self.cache)
            for name in [*BUILDERS, "lag", "state"]
        ]
