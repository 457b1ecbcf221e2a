"""The metric tables: Arrow snapshots of :class:`~pinpipe.streaming.metrics.MetricsState`.

Each function returns one table written to ``tables.metrics_table(settings, name)`` after every
micro-batch; rows are sorted so equal states give equal tables. Definitions: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from pinpipe.streaming.metrics import MetricsState, split_key
from pinpipe.streaming.windows import DAY, HOUR, MINUTE, SCORE_FLOOR, bucket

TS = pa.timestamp("us")

SCHEMAS: dict[str, pa.Schema] = {
    "profile_popularity": pa.schema(
        [
            ("window", pa.string()),
            ("rank", pa.int32()),
            ("poster_name", pa.string()),
            ("posts", pa.int64()),
            ("follower_count", pa.int64()),
            ("window_start", TS),
            ("window_end", TS),
        ]
    ),
    "trending_categories": pa.schema(
        [("category", pa.string()), ("window_start", TS), ("window_end", TS), ("posts", pa.int64())]
    ),
    "category_scores": pa.schema(
        [("rank", pa.int32()), ("category", pa.string()), ("score", pa.float64()), ("as_of", TS)]
    ),
    "country_activity": pa.schema(
        [
            ("country", pa.string()),
            ("events_1h", pa.int64()),
            ("events_24h", pa.int64()),
            ("events_total", pa.int64()),
        ]
    ),
    "events_per_second": pa.schema([("stream", pa.string()), ("second", TS), ("events", pa.int64())]),
    "late_events": pa.schema(
        [
            ("input", pa.string()),
            ("events", pa.int64()),
            ("late_events", pa.int64()),
            ("unpaired_events", pa.int64()),
            ("stream_time", TS),
            ("watermark_s", pa.float64()),
        ]
    ),
    "lag": pa.schema(
        [
            ("stream", pa.string()),
            ("partition", pa.int32()),
            ("end_offset", pa.int64()),
            ("processed_offset", pa.int64()),
            ("lag", pa.int64()),
        ]
    ),
}
"""Every metric table and its columns."""

STATE_METRICS = (
    "profile_popularity",
    "trending_categories",
    "category_scores",
    "country_activity",
    "events_per_second",
    "late_events",
)
"""Metrics derived from the state alone (``lag`` is a snapshot of the log)."""


def to_datetime(seconds: float | None) -> int | None:
    """Epoch seconds of a naive timestamp as the microseconds of an Arrow ``timestamp("us")``.

    Arrow builds timestamp columns from integers without importing pandas (which costs seconds at the
    start of a short-lived processor); :func:`_table` casts them.
    """
    if seconds is None:
        return None
    return round(seconds * 1_000_000)


def _table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = SCHEMAS[name]
    plain = pa.schema([pa.field(f.name, pa.int64()) if pa.types.is_timestamp(f.type) else f for f in schema])
    return pa.Table.from_pylist(rows, schema=plain).cast(schema)


def profile_popularity(state: MetricsState) -> pa.Table:
    now = state.post_marks.stream_time
    rows: list[dict[str, Any]] = []
    if now is None:
        return _table("profile_popularity", rows)
    for window, cells, width, span in (
        ("1h", state.poster_min, MINUTE, HOUR),
        ("24h", state.poster_hour, HOUR, DAY),
    ):
        end = bucket(now, width) + width
        per_poster: dict[str, list[Any]] = {}
        for key, cell in cells.items():
            start, poster = split_key(key)
            if not end - span <= start < end:
                continue
            acc = per_poster.setdefault(poster, [0, None, None])
            acc[0] += cell[0]
            if cell[1] is not None:
                latest = (cell[1], cell[2], cell[3])
                if acc[1] is None or latest > acc[1]:
                    acc[1], acc[2] = latest, cell[4]
        ranked = sorted(per_poster.items(), key=_popularity_order)
        for rank, (poster, (posts, _, followers)) in enumerate(ranked[: state.config.top_k], start=1):
            rows.append(
                {
                    "window": window,
                    "rank": rank,
                    "poster_name": poster,
                    "posts": posts,
                    "follower_count": followers,
                    "window_start": to_datetime(end - span),
                    "window_end": to_datetime(end),
                }
            )
    return _table("profile_popularity", rows)


def _popularity_order(item: tuple[str, list[Any]]) -> tuple[int, int, int, str]:
    poster, (posts, _, followers) = item
    return (-posts, followers is None, -(followers or 0), poster)


def trending_categories(state: MetricsState) -> pa.Table:
    rows = []
    for key, posts in state.category_min.items():
        start, category = split_key(key)
        rows.append(
            {
                "category": category,
                "window_start": to_datetime(start),
                "window_end": to_datetime(start + MINUTE),
                "posts": posts,
            }
        )
    rows.sort(key=lambda r: (r["window_start"], r["category"]))
    return _table("trending_categories", rows)


def category_scores(state: MetricsState) -> pa.Table:
    score = state.category_score
    kept = ((c, v) for c, v in score.scores.items() if v > SCORE_FLOOR)
    ranked = sorted(kept, key=lambda kv: (-kv[1], kv[0]))
    rows = [
        {"rank": i, "category": c, "score": v, "as_of": to_datetime(score.as_of)}
        for i, (c, v) in enumerate(ranked, start=1)
    ]
    return _table("category_scores", rows)


def country_activity(state: MetricsState) -> pa.Table:
    now = state.geo_marks.stream_time
    counts: dict[str, list[int]] = {c: [0, 0, n] for c, n in state.country_total.items()}
    if now is not None:
        for index, cells, width, span in (
            (0, state.country_min, MINUTE, HOUR),
            (1, state.country_hour, HOUR, DAY),
        ):
            end = bucket(now, width) + width
            for key, n in cells.items():
                start, country = split_key(key)
                if end - span <= start < end:
                    counts.setdefault(country, [0, 0, 0])[index] += n
    rows = [
        {"country": c, "events_1h": a, "events_24h": b, "events_total": t}
        for c, (a, b, t) in sorted(counts.items(), key=lambda kv: (-kv[1][2], kv[0]))
    ]
    return _table("country_activity", rows)


def events_per_second(state: MetricsState) -> pa.Table:
    rows = []
    for key, n in state.eps.items():
        second, stream = split_key(key)
        rows.append({"stream": stream, "second": to_datetime(second), "events": n})
    rows.sort(key=lambda r: (r["second"], r["stream"]))
    return _table("events_per_second", rows)


def late_events(state: MetricsState) -> pa.Table:
    c = state.counters
    wm = state.config.watermark_s
    rows = [
        {
            "input": "post",
            "events": c["posts"] + c["pins_unpaired"],
            "late_events": c["posts_late"],
            "unpaired_events": c["pins_unpaired"],
            "stream_time": to_datetime(state.post_marks.stream_time),
            "watermark_s": wm,
        },
        {
            "input": "geo",
            "events": c["geo"],
            "late_events": c["geo_late"],
            "unpaired_events": 0,
            "stream_time": to_datetime(state.geo_marks.stream_time),
            "watermark_s": wm,
        },
    ]
    return _table("late_events", rows)


BUILDERS: dict[str, Callable[[MetricsState], pa.Table]] = {
    "profile_popularity": profile_popularity,
    "trending_categories": trending_categories,
    "category_scores": category_scores,
    "country_activity": country_activity,
    "events_per_second": events_per_second,
    "late_events": late_events,
}


def lag_table(rows: list[dict[str, Any]]) -> pa.Table:
    return _table("lag", sorted(rows, key=lambda r: (r["stream"], r["partition"])))
