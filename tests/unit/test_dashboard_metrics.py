"""/api/metrics over metric tables written here with the stream processor's own schemas."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake
from fastapi.testclient import TestClient

from pinpipe.config import Settings
from pinpipe.dashboard import create_dashboard_app
from pinpipe.dashboard.metrics import TABLES
from pinpipe.locations import delta_uri
from pinpipe.streaming.views import SCHEMAS
from pinpipe.tables import metrics_table

T0 = dt.datetime(2022, 1, 1, 12, 0, 0)


def write_metric(settings: Settings, name: str, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows, schema=SCHEMAS[name])
    write_deltalake(delta_uri(metrics_table(settings, name)), table, mode="overwrite")


def test_the_dashboard_reads_every_metric_table_the_stream_processor_writes() -> None:
    assert set(TABLES) <= set(SCHEMAS)


def test_metrics_empty_until_the_processor_wrote(settings: Settings) -> None:
    body = TestClient(create_dashboard_app(settings)).get("/api/metrics").json()
    assert body["available"] is False and "pinpipe stream run" in body["hint"]


def test_metrics_as_written(settings: Settings) -> None:
    sec = dt.timedelta(seconds=1)
    write_metric(
        settings,
        "events_per_second",
        [{"stream": "streaming-x-pin", "second": T0 - i * sec, "events": 3} for i in range(12)]
        + [{"stream": "streaming-x-geo", "second": T0 - 20 * sec, "events": 99}],
    )
    write_metric(
        settings,
        "profile_popularity",
        [
            {"window": "24h", "rank": 1, "poster_name": "Ann", "posts": 5, "follower_count": 2000},
            {"window": "1h", "rank": 2, "poster_name": "Bob", "posts": 1, "follower_count": None},
            {"window": "1h", "rank": 1, "poster_name": "Cy", "posts": 2, "follower_count": 10},
        ],
    )
    write_metric(
        settings,
        "trending_categories",
        [
            {"category": "art", "window_start": T0, "window_end": T0 + 60 * sec, "posts": 4},
            {"category": "diy", "window_start": T0 - 60 * sec, "window_end": T0, "posts": 9},
        ],
    )
    write_metric(
        settings,
        "category_scores",
        [
            {"rank": 2, "category": "diy", "score": 1.5, "as_of": T0},
            {"rank": 1, "category": "art", "score": 3.25, "as_of": T0},
        ],
    )
    write_metric(
        settings,
        "country_activity",
        [{"country": "Chad", "events_1h": 1, "events_24h": 2, "events_total": 7}],
    )
    write_metric(
        settings,
        "late_events",
        [
            {
                "input": "post",
                "events": 10,
                "late_events": 1,
                "unpaired_events": 2,
                "stream_time": T0,
                "watermark_s": 600.0,
            }
        ],
    )
    body = TestClient(create_dashboard_app(settings)).get("/api/metrics").json()
    assert body["available"] is True
    eps = {e["stream"]: e for e in body["events_per_second"]}
    # 3 events in each of the last 10 seconds ending at the latest second recorded
    assert eps["streaming-x-pin"]["events_per_second"] == 3.0
    assert eps["streaming-x-pin"]["series"][-12:] == [3] * 12 and len(eps["streaming-x-pin"]["series"]) == 60
    assert eps["streaming-x-geo"]["events_per_second"] == 0.0 and eps["streaming-x-geo"]["series"][-21] == 99
    assert [(p["window"], p["rank"], p["poster_name"]) for p in body["top_profiles"]] == [
        ("1h", 1, "Cy"),
        ("1h", 2, "Bob"),
        ("24h", 1, "Ann"),
    ]
    assert body["trending_categories"] == [
        {"rank": 1, "category": "art", "score": 3.25, "posts": 4},
        {"rank": 2, "category": "diy", "score": 1.5, "posts": 0},
    ]
    assert body["country_activity"] == [
        {"country": "Chad", "events_1h": 1, "events_24h": 2, "events_total": 7}
    ]
    assert body["late_events"][0]["late_events"] == 1
