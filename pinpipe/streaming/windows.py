"""Event-time building blocks of the real-time metrics: time buckets, per-partition watermarks, decay.

Everything here is a deterministic function of each partition's record sequence, never of how records
were grouped into micro-batches or interleaved across partitions, so a processor killed and restarted
mid-stream computes exactly what an uninterrupted one computes (see docs/metrics.md).
"""

from __future__ import annotations

import math

SCORE_FLOOR = 1e-12
"""Decayed scores at or below this are dropped (from the state and from the category_scores table)."""
MINUTE = 60
HOUR = 3600
DAY = 86400


def bucket(ts: float, width: int) -> int:
    """Start (epoch seconds) of the ``width``-second bucket holding ``ts``."""
    return math.floor(ts / width) * width


class PartitionWatermarks:
    """Stream time per partition and the lateness rule (Flink-style per-partition watermarks).

    An event is late when its event time is more than ``delay_s`` behind the largest event time seen
    *earlier in the same partition*; the partition's stream time then moves to the maximum. Because
    only the partition's own order matters, lateness does not depend on batching or on the other
    partitions. ``stream_time`` is the maximum over partitions (the stream's clock for windows).
    """

    def __init__(self, delay_s: float, maxima: dict[str, float] | None = None) -> None:
        self.delay_s = delay_s
        self.maxima: dict[str, float] = dict(maxima or {})

    def observe(self, partition: str, ts: float) -> bool:
        """Record ``ts`` in ``partition``; True when the event is on time, False when late."""
        seen = self.maxima.get(partition)
        if seen is None or ts > seen:
            self.maxima[partition] = ts
            return True
        return ts >= seen - self.delay_s

    @property
    def stream_time(self) -> float | None:
        return max(self.maxima.values()) if self.maxima else None


class DecayedScore:
    """Exponentially decayed counts, half-life ``half_life_s``, all expressed at one time ``as_of``.

    score(c) = sum over counted events e of c: 2 ** (-(as_of - ts(e)) / half_life_s). Moving ``as_of``
    forward multiplies every score by the same factor, so the state is one float per key.
    """

    def __init__(
        self, half_life_s: float, as_of: float | None = None, scores: dict[str, float] | None = None
    ) -> None:
        self.half_life_s = half_life_s
        self.as_of = as_of
        self.scores: dict[str, float] = dict(scores or {})

    def advance(self, now: float) -> None:
        if self.as_of is None or now <= self.as_of:
            self.as_of = now if self.as_of is None else self.as_of
            return
        factor = 2.0 ** (-(now - self.as_of) / self.half_life_s)
        self.scores = {k: v * factor for k, v in self.scores.items() if v * factor > SCORE_FLOOR}
        self.as_of = now

    def add(self, key: str, ts: float) -> None:
        self.advance(ts)
        assert self.as_of is not None
        self.scores[key] = self.scores.get(key, 0.0) + 2.0 ** (-(self.as_of - ts) / self.half_life_s)
