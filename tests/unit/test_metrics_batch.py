"""Each real-time metric recomputed in batch from the cleaned Delta tables equals the streaming result.

The batch side is written from docs/metrics.md alone, over whole tables (no windows state, no
eviction), so it checks the streaming implementation's incremental state against the definitions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pinpipe import tables
from pinpipe.config import Settings, load_settings
from pinpipe.schema import stream_name
from pinpipe.streaming.metrics import EPS_HORIZON_S, HALF_LIFE_S, PAIR_WINDOW_S
from pinpipe.streaming.processor import run_stream
from tests.unit.test_stream_support import (
    live_times,
    memory_log_with,
    metric_rows,
    read,
    replay_iterations,
    stream_rows,
)

WATERMARK = 600.0
EPOCH = datetime(1970, 1, 1)


def secs(ts: datetime) -> float:
    return (ts - EPOCH).total_seconds()


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory, aicore: Path) -> Settings:
    workdir = tmp_path_factory.mktemp("metrics")
    s = load_settings(
        workdir=workdir,
        **{
            "stream.max_records": 97,
            "stream.max_wait_s": 0.0,
            "stream.watermark_s": WATERMARK,
            "stream.top_k": 5,
        },
    )
    its = live_times(replay_iterations(aicore, 900))
    its[5] = {**its[5], "geo": None}  # a pin without its geo event: unpaired
    # the unpaired pin must be decided, so the clock starts well before "now"
    run_stream(s, log=memory_log_with(s.prefix, its, start=1_700_000_000.0, extra={"geo": [b"{broken"]}))
    return s


def posts(s: Settings) -> tuple[list[dict[str, Any]], int]:
    """Pins paired with a geo event of the same ind arriving within PAIR_WINDOW_S, in log order."""
    geos = stream_rows(s, "geo")
    by_ind: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for g in geos:
        by_ind[g["ind"]].append(g)
    out, unpaired = [], 0
    for pin in stream_rows(s, "pin"):
        match = [
            g
            for g in by_ind.get(pin["ind"], [])
            if g["timestamp"] is not None
            and abs((g["_arrival"] - pin["_arrival"]).total_seconds()) <= PAIR_WINDOW_S
        ]
        if not match:
            unpaired += 1
            continue
        out.append({**pin, "ts": secs(match[0]["timestamp"]), "country": match[0]["country"]})
    return out, unpaired


def on_time(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Per-partition lateness in offset order: late when behind that partition's max by > WATERMARK."""
    maxima: dict[int, float] = {}
    kept, late = [], 0
    for r in sorted(rows, key=lambda r: (r["_partition"], r["_offset"])):
        seen = maxima.get(r["_partition"])
        if seen is not None and r["ts"] < seen - WATERMARK:
            late += 1
            continue
        maxima[r["_partition"]] = max(seen or r["ts"], r["ts"])
        kept.append(r)
    return kept, late


def geo_events(s: Settings) -> list[dict[str, Any]]:
    return [{**g, "ts": secs(g["timestamp"])} for g in stream_rows(s, "geo") if g["timestamp"] is not None]


def to_ts(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def test_profile_popularity(streamed: Settings) -> None:
    all_posts, _ = posts(streamed)
    kept, _ = on_time(all_posts)
    now = max(p["ts"] for p in all_posts)
    expected = []
    for window, width, span in (("1h", 60, 3600), ("24h", 3600, 86400)):
        end = math.floor(now / width) * width + width
        agg: dict[str, list[Any]] = {}
        for p in kept:
            if p["poster_name"] is None or not end - span <= math.floor(p["ts"] / width) * width < end:
                continue
            a = agg.setdefault(p["poster_name"], [0, None, None])
            a[0] += 1
            if p["follower_count"] is not None:
                key = (p["ts"], p["_partition"], p["_offset"])
                if a[1] is None or key > a[1]:
                    a[1], a[2] = key, p["follower_count"]
        ranked = sorted(agg.items(), key=lambda kv: (-kv[1][0], kv[1][2] is None, -(kv[1][2] or 0), kv[0]))
        for rank, (poster, (n, _, followers)) in enumerate(ranked[: streamed.stream.top_k], start=1):
            expected.append(
                {
                    "window": window,
                    "rank": rank,
                    "poster_name": poster,
                    "posts": n,
                    "follower_count": followers,
                    "window_start": to_ts(end - span),
                    "window_end": to_ts(end),
                }
            )
    got = metric_rows(streamed, "profile_popularity")
    assert got == expected
    assert len(got) == 2 * streamed.stream.top_k


def test_trending_categories_and_decayed_score(streamed: Settings) -> None:
    all_posts, _ = posts(streamed)
    kept, _ = on_time(all_posts)
    now = max(p["ts"] for p in all_posts)
    counts: dict[tuple[float, str], int] = defaultdict(int)
    scores: dict[str, float] = defaultdict(float)
    for p in kept:
        if p["category"] is None:
            continue
        start = math.floor(p["ts"] / 60) * 60
        if start + 60 > now - WATERMARK:
            counts[(start, p["category"])] += 1
        scores[p["category"]] += 2 ** (-(now - p["ts"]) / HALF_LIFE_S)
    expected = [
        {"category": c, "window_start": to_ts(m), "window_end": to_ts(m + 60), "posts": n}
        for (m, c), n in sorted(counts.items())
    ]
    assert metric_rows(streamed, "trending_categories") == expected
    assert len(expected) > 5
    got = metric_rows(streamed, "category_scores")
    ranked = sorted(((c, v) for c, v in scores.items() if v > 1e-12), key=lambda kv: (-kv[1], kv[0]))
    assert [r["category"] for r in got] == [c for c, _ in ranked]
    assert [r["rank"] for r in got] == list(range(1, len(got) + 1))
    for row, (_, value) in zip(got, ranked, strict=True):
        assert row["score"] == pytest.approx(value, rel=1e-9, abs=1e-12)
        assert row["as_of"] == to_ts(now)


def test_country_activity(streamed: Settings) -> None:
    geos = geo_events(streamed)
    kept, _ = on_time(geos)
    now = max(g["ts"] for g in geos)
    rows: dict[str, list[int]] = {}
    for g in geos:
        if g["country"] is not None:
            rows.setdefault(g["country"], [0, 0, 0])[2] += 1
    for g in kept:
        if g["country"] is None:
            continue
        for i, width, span in ((0, 60, 3600), (1, 3600, 86400)):
            end = math.floor(now / width) * width + width
            if end - span <= math.floor(g["ts"] / width) * width < end:
                rows[g["country"]][i] += 1
    expected = [
        {"country": c, "events_1h": a, "events_24h": b, "events_total": t}
        for c, (a, b, t) in sorted(rows.items(), key=lambda kv: (-kv[1][2], kv[0]))
    ]
    got = metric_rows(streamed, "country_activity")
    assert got == expected
    assert any(r["events_1h"] for r in got) and any(r["events_24h"] > r["events_1h"] for r in got)


def test_late_events(streamed: Settings) -> None:
    all_posts, unpaired = posts(streamed)
    _, late_posts = on_time(all_posts)
    geos = geo_events(streamed)
    _, late_geo = on_time(geos)
    got = {r["input"]: r for r in metric_rows(streamed, "late_events")}
    assert unpaired == 1
    assert late_posts > 10 and late_geo > 10
    assert (got["post"]["events"], got["post"]["late_events"], got["post"]["unpaired_events"]) == (
        len(all_posts) + unpaired,
        late_posts,
        unpaired,
    )
    assert (got["geo"]["events"], got["geo"]["late_events"]) == (len(geos), late_geo)
    assert got["geo"]["stream_time"] == to_ts(max(g["ts"] for g in geos))


def test_events_per_second(streamed: Settings) -> None:
    arrivals: list[tuple[str, datetime]] = []
    for kind in ("pin", "geo", "user"):
        arrivals += [(kind, r["_arrival"]) for r in stream_rows(streamed, kind)]
    dead = read(tables.dead_letter_table(streamed)).to_pylist()
    assert [d["stream"] for d in dead] == [stream_name(streamed.prefix, "geo")]
    arrivals += [("geo", d["arrival"]) for d in dead]
    last = max(int(a.timestamp()) for _, a in arrivals)
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for kind, a in arrivals:
        second = int(a.timestamp())
        if second > last - EPS_HORIZON_S:
            counts[(second, kind)] += 1
    expected = [
        {"stream": k, "second": datetime.fromtimestamp(sec, UTC).replace(tzinfo=None), "events": n}
        for (sec, k), n in sorted(counts.items())
    ]
    assert metric_rows(streamed, "events_per_second") == expected
