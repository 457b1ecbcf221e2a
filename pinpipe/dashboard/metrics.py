"""The stream processor's real-time metrics as the page shows them.

Read with :func:`pinpipe.streaming.read_metrics` (the same rows as ``pinpipe metrics --json``; definitions
in docs/metrics.md). The page adds one derived number, the events per second of each stream: the mean of
the per-second arrival counts over the last ``EPS_WINDOW_S`` seconds ending at the latest second the
processor recorded.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from pinpipe.config import Settings
from pinpipe.dashboard.models import (
    CategoryTrend,
    CountryActivity,
    LateEvents,
    Metrics,
    ProfileRank,
    StreamEvents,
)
from pinpipe.streaming.views import STATE_METRICS

EPS_WINDOW_S = 10
SERIES_S = 60
METRICS_HINT = "no real-time metrics yet: run `pinpipe stream run` (or `pinpipe demo`)"
TABLES = STATE_METRICS
"""The metric tables the dashboard shows (the processor's state; lag comes from the log itself)."""


def _time(value: dt.datetime | str) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


def events_per_second(rows: list[dict[str, Any]]) -> list[StreamEvents]:
    """Per stream: mean rate over the last EPS_WINDOW_S seconds and the per-second series behind it."""
    if not rows:
        return []
    per_stream: dict[str, dict[dt.datetime, int]] = defaultdict(dict)
    for r in rows:
        per_stream[r["stream"]][_time(r["second"])] = r["events"]
    last = max(second for counts in per_stream.values() for second in counts)
    result = []
    for stream, counts in sorted(per_stream.items()):
        series = [counts.get(last - dt.timedelta(seconds=s), 0) for s in range(SERIES_S - 1, -1, -1)]
        window = series[-EPS_WINDOW_S:]
        result.append(
            StreamEvents(
                stream=stream,
                events_per_second=round(sum(window) / EPS_WINDOW_S, 2),
                as_of=last,
                series=series,
            )
        )
    return result


def trending(scores: list[dict[str, Any]], minutes: list[dict[str, Any]]) -> list[CategoryTrend]:
    """Categories by decayed score, each with its posts in the latest 1-minute window."""
    latest = max((m["window_start"] for m in minutes), default=None)
    in_latest = {m["category"]: m["posts"] for m in minutes if m["window_start"] == latest}
    return [
        CategoryTrend(
            rank=s["rank"], category=s["category"], score=s["score"], posts=in_latest.get(s["category"], 0)
        )
        for s in sorted(scores, key=lambda s: s["rank"])
    ]


def read_live_metrics(settings: Settings) -> Metrics:
    """The metrics the stream processor last committed; empty with a hint until it has written some."""
    from pinpipe.streaming import read_metrics

    rows = read_metrics(settings)
    if not any(rows.get(name) for name in TABLES):
        return Metrics(available=False, hint=METRICS_HINT)
    return Metrics(
        available=True,
        events_per_second=events_per_second(rows["events_per_second"]),
        top_profiles=[
            ProfileRank.model_validate(r) for r in sorted(rows["profile_popularity"], key=_profile_order)
        ],
        trending_categories=trending(rows["category_scores"], rows["trending_categories"]),
        country_activity=[CountryActivity.model_validate(r) for r in rows["country_activity"]],
        late_events=[LateEvents.model_validate(r) for r in rows["late_events"]],
    )


def _profile_order(row: dict[str, Any]) -> tuple[str, int]:
    return (row["window"], row["rank"])
