"""Real-time metrics state: windows, per-partition watermarks, top-K inputs, decayed scores.

:class:`MetricsState` is fed the records of each micro-batch and holds only bounded, windowed state
(everything behind the windows or the watermark is evicted). It is saved whole, as JSON, in the
processor's state table in the same Delta transaction as the offsets it has consumed, so after a crash
it restarts from exactly the state matching those offsets. The definitions are in docs/metrics.md;
:mod:`pinpipe.streaming.views` turns the state into the metric tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from pinpipe.streaming.pairing import PendingPin, PinGeoPairer, Post
from pinpipe.streaming.windows import DAY, HOUR, MINUTE, DecayedScore, PartitionWatermarks, bucket

PAIR_WINDOW_S = 5.0
"""Pin and geo events of one ``ind`` pair when their arrivals are at most this far apart."""
HALF_LIFE_S = 600.0
"""Half-life of the trending categories' decayed score (event time)."""
EPS_HORIZON_S = 300
"""Events-per-second buckets kept, in seconds of arrival time behind the latest arrival."""
STATE_FORMAT = 2
"""2: the pairer saves its geo events as one list (1: per ind and an order apart; still read)."""


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    watermark_s: float = 600.0
    top_k: int = 10
    pair_window_s: float = PAIR_WINDOW_S
    half_life_s: float = HALF_LIFE_S
    partitions: int = 3
    """Partitions of each stream (pin and geo), to know when every partition has a frontier."""
    event_time: str = "timestamp"
    """The clock of the windows: ``timestamp``, the geo row's own time; ``arrival``, the log's append time
    of the geo event (replayed history then counts as posted now). A saved state keeps its own clock."""


def _key(name: str, start: int) -> str:
    """State key of a (name, bucket start) cell: ``"<start>|<name>"``."""
    return f"{start}|{name}"


def split_key(key: str) -> tuple[int, str]:
    start, name = key.split("|", 1)
    return int(start), name


class MetricsState:
    """All metric state of the stream processor; see docs/metrics.md for each definition."""

    def __init__(self, config: MetricsConfig) -> None:
        self.config = config
        self.pairer = PinGeoPairer(config.pair_window_s)
        self.post_marks = PartitionWatermarks(config.watermark_s)
        self.geo_marks = PartitionWatermarks(config.watermark_s)
        # popularity cells: _key(poster, bucket) -> [posts, latest ts, partition, offset, followers]
        self.poster_min: dict[str, list[Any]] = {}
        self.poster_hour: dict[str, list[Any]] = {}
        self.category_min: dict[str, int] = {}
        self.category_score = DecayedScore(config.half_life_s)
        self.country_min: dict[str, int] = {}
        self.country_hour: dict[str, int] = {}
        self.country_total: dict[str, int] = {}
        self.eps: dict[str, int] = {}
        self.max_arrival: float | None = None
        self.counters: dict[str, int] = {
            "posts": 0,
            "posts_late": 0,
            "pins_unpaired": 0,
            "geo": 0,
            "geo_late": 0,
        }

    # ---- input -------------------------------------------------------------------------------
    def arrived(self, stream: str, arrivals: Sequence[float]) -> None:
        """Records of ``stream`` (valid or not) at log append times ``arrivals``: events per second."""
        if not arrivals:
            return
        for second, n in Counter(map(int, arrivals)).items():
            key = _key(stream, second)
            self.eps[key] = self.eps.get(key, 0) + n
        latest = max(arrivals)
        self.max_arrival = latest if self.max_arrival is None else max(self.max_arrival, latest)

    def add_pin(self, partition: int, offset: int, arrival: float, row: dict[str, Any]) -> None:
        pin = PendingPin(
            offset,
            arrival,
            row.get("ind"),
            row.get("poster_name"),
            row.get("follower_count"),
            row.get("category"),
        )
        self.pairer.add_pin(str(partition), pin)

    def add_geo(self, partition: int, offset: int, arrival: float, row: dict[str, Any]) -> None:
        # event time: epoch seconds of the naive timestamp, or of the log's append time
        ts: float | None = arrival if self.config.event_time == "arrival" else row.get("timestamp")
        country: str | None = row.get("country")
        self.pairer.add_geo(str(partition), arrival, row.get("ind"), ts, country)
        if ts is None:
            return
        self.counters["geo"] += 1
        if country is not None:  # a cumulative count: lateness does not matter
            self.country_total[country] = self.country_total.get(country, 0) + 1
        if not self.geo_marks.observe(str(partition), ts):
            self.counters["geo_late"] += 1
            return
        if country is None:
            return
        for table, width in ((self.country_min, MINUTE), (self.country_hour, HOUR)):
            k = _key(country, bucket(ts, width))
            table[k] = table.get(k, 0) + 1

    def caught_up(self, stream: str, partition: int, at: float) -> None:
        """``stream`` partition had nothing more to read at wall-clock ``at`` (already minus a margin)."""
        if stream in ("pin", "geo"):
            self.pairer.advance_frontier(stream, str(partition), at)

    # ---- per micro-batch ---------------------------------------------------------------------
    def settle(self) -> None:
        """Release decidable posts, count them, and evict everything behind the windows."""
        posts, unpaired = self.pairer.release(self.config.partitions)
        self.counters["pins_unpaired"] += unpaired
        for post in posts:
            self._add_post(post)
        self.pairer.forget(self.config.partitions)
        self._evict()

    def _add_post(self, post: Post) -> None:
        self.counters["posts"] += 1
        if not self.post_marks.observe(post.partition, post.ts):
            self.counters["posts_late"] += 1
            return
        if post.poster_name is not None:
            for table, width in ((self.poster_min, MINUTE), (self.poster_hour, HOUR)):
                k = _key(post.poster_name, bucket(post.ts, width))
                cell = table.setdefault(k, [0, None, None, None, None])
                cell[0] += 1
                if post.follower_count is not None:
                    latest = (post.ts, int(post.partition), post.offset)
                    if cell[1] is None or latest > (cell[1], cell[2], cell[3]):
                        cell[1:] = [*latest, post.follower_count]
        if post.category is not None:
            k = _key(post.category, bucket(post.ts, MINUTE))
            self.category_min[k] = self.category_min.get(k, 0) + 1
            self.category_score.add(post.category, post.ts)

    def _evict(self) -> None:
        post_time = self.post_marks.stream_time
        if post_time is not None:
            # trailing windows keep the 60 minute / 24 hour buckets ending with the stream time's bucket;
            # a tumbling minute closes once its end is at or behind stream time - watermark
            _drop_upto(self.poster_min, bucket(post_time, MINUTE) - HOUR)
            _drop_upto(self.poster_hour, bucket(post_time, HOUR) - DAY)
            _drop_upto(self.category_min, post_time - self.config.watermark_s - MINUTE)
            self.category_score.advance(post_time)
        geo_time = self.geo_marks.stream_time
        if geo_time is not None:
            _drop_upto(self.country_min, bucket(geo_time, MINUTE) - HOUR)
            _drop_upto(self.country_hour, bucket(geo_time, HOUR) - DAY)
        if self.max_arrival is not None:
            _drop_upto(self.eps, int(self.max_arrival) - EPS_HORIZON_S)

    @property
    def pending_pins(self) -> int:
        return self.pairer.pending

    # ---- persistence -------------------------------------------------------------------------
    def to_json(self) -> str:
        # orjson: the same JSON as json.dumps(separators=(",", ":"), ensure_ascii=False) at a tenth of the
        # cost (the state is written every micro-batch and holds seconds of geo events for pairing)
        return orjson.dumps(
            {
                "format": STATE_FORMAT,
                "event_time": self.config.event_time,
                "pairer": self.pairer.to_dict(),
                "post_marks": self.post_marks.maxima,
                "geo_marks": self.geo_marks.maxima,
                "poster_min": self.poster_min,
                "poster_hour": self.poster_hour,
                "category_min": self.category_min,
                "category_score": [self.category_score.as_of, self.category_score.scores],
                "country_min": self.country_min,
                "country_hour": self.country_hour,
                "country_total": self.country_total,
                "eps": self.eps,
                "max_arrival": self.max_arrival,
                "counters": self.counters,
            },
            option=orjson.OPT_NON_STR_KEYS,
        ).decode()

    @classmethod
    def from_json(cls, config: MetricsConfig, text: str) -> MetricsState:
        data = orjson.loads(text)
        # the clock the saved windows were built on, whatever the settings say now (a state from before the
        # setting existed used the timestamps)
        state = cls(replace(config, event_time=data.get("event_time", "timestamp")))
        state.pairer = PinGeoPairer.from_dict(config.pair_window_s, data["pairer"])
        state.post_marks = PartitionWatermarks(config.watermark_s, data["post_marks"])
        state.geo_marks = PartitionWatermarks(config.watermark_s, data["geo_marks"])
        state.poster_min = data["poster_min"]
        state.poster_hour = data["poster_hour"]
        state.category_min = data["category_min"]
        as_of, scores = data["category_score"]
        state.category_score = DecayedScore(config.half_life_s, as_of, scores)
        state.country_min = data["country_min"]
        state.country_hour = data["country_hour"]
        state.country_total = data["country_total"]
        state.eps = data["eps"]
        state.max_arrival = data["max_arrival"]
        state.counters = data["counters"]
        return state


def _drop_upto(table: dict[str, Any], last_dropped: float) -> None:
    """Remove the cells whose bucket start is at or before ``last_dropped``."""
    stale = [k for k in table if split_key(k)[0] <= last_dropped]
    for k in stale:
        del table[k]
