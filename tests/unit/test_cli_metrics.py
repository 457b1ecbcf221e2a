"""The live metrics on replayed history: the arrival clock (the demo's) counts the posts as recent, a saved
state keeps its clock, and category scores below the documented 1e-12 floor are dropped."""

from __future__ import annotations

import random

import pytest

from pinpipe.streaming.metrics import MetricsConfig, MetricsState
from pinpipe.streaming.views import category_scores, profile_popularity, trending_categories

NOW = 1_780_000_000.0
CATEGORIES = [f"category-{i}" for i in range(10)]


def replay(event_time: str, posts: int = 300) -> MetricsState:
    """``posts`` posts arriving 0.1 s apart now, whose geo timestamps are spread over five years in random
    order, as the emulator replays the source rows."""
    rng = random.Random(7)
    state = MetricsState(MetricsConfig(partitions=1, event_time=event_time))
    for i in range(posts):
        arrival = NOW + i * 0.1
        historical = NOW - rng.uniform(0, 5 * 365 * 86_400)
        state.add_geo(0, i, arrival, {"ind": i, "timestamp": historical, "country": "Chad"})
        pin = {
            "ind": i,
            "poster_name": f"poster-{i % 25}",
            "follower_count": i,
            "category": CATEGORIES[i % 10],
        }
        state.add_pin(0, i, arrival, pin)
    state.caught_up("geo", 0, NOW + posts)
    state.caught_up("pin", 0, NOW + posts)
    state.settle()
    return state


def test_the_arrival_clock_counts_replayed_history_as_recent() -> None:
    state = replay("arrival")
    assert state.counters["posts"] == 300 and state.counters["posts_late"] == 0
    assert state.counters["geo"] == 300 and state.counters["geo_late"] == 0
    trending = trending_categories(state).to_pylist()
    assert {row["category"] for row in trending} == set(CATEGORIES)
    assert sum(row["posts"] for row in trending) == 300
    top_1h = [row for row in profile_popularity(state).to_pylist() if row["window"] == "1h"]
    assert len(top_1h) == 10 and top_1h[0]["posts"] == 12
    assert len(category_scores(state)) == 10


def test_the_timestamp_clock_finds_replayed_history_late() -> None:
    state = replay("timestamp")
    assert state.counters["posts_late"] > 250  # what docs/metrics.md explains
    assert len({row["category"] for row in trending_categories(state).to_pylist()}) < 10


def test_a_saved_state_keeps_its_clock() -> None:
    saved = replay("arrival").to_json()
    restored = MetricsState.from_json(MetricsConfig(partitions=1, event_time="timestamp"), saved)
    assert restored.config.event_time == "arrival"


def test_scores_below_the_floor_are_dropped() -> None:
    state = MetricsState(MetricsConfig())
    state.category_score.add("recent", NOW)
    state.category_score.add("old", NOW - 60_000)  # 2^-100 of a post: far below 1e-12
    rows = category_scores(state).to_pylist()
    assert [(row["rank"], row["category"]) for row in rows] == [(1, "recent")]
    assert rows[0]["score"] == pytest.approx(1.0)
