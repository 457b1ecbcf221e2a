"""Real-time metrics of the Spark stream job, recomputed in Spark SQL from the stream tables after each
micro-batch and written over ``tables.metrics_table`` (same names and columns as the embedded processor,
so the dashboard and ``pinpipe metrics`` read them unchanged).

Reproduced (definitions in docs/metrics.md): ``trending_categories``, ``profile_popularity``,
``country_activity`` and ``late_events``, with the per-partition watermark: an event is late when its
event time is more than ``stream.watermark_s`` behind the largest event time seen earlier in its
partition (pin partition for posts, geo partition for geo events); late events update no window. A post's
event time and country come from the geo event of its ``ind`` that arrived first. Not reproduced: the
±5 s arrival pairing window (any geo event of the ``ind`` pairs), ``category_scores``,
``events_per_second`` and ``lag``. Being recomputed from the tables, the metrics are exactly once by
construction; the cost grows with the tables (fine for a demo-sized stream; see docs/spark.md).
"""

from __future__ import annotations

from typing import Any

from pinpipe import tables
from pinpipe.config import Settings

POSTS = """
geo_first AS (
  SELECT ind, min_by(timestamp, struct(_arrival, _partition, _offset)) AS event_time,
    min_by(country, struct(_arrival, _partition, _offset)) AS country
  FROM stream_geo WHERE timestamp IS NOT NULL GROUP BY ind
),
paired AS (
  SELECT p.poster_name, p.follower_count, p.category, p._partition, p._offset, g.event_time,
    max(g.event_time) OVER (PARTITION BY p._partition ORDER BY p._offset
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS seen
  FROM stream_pin AS p JOIN geo_first AS g ON p.ind = g.ind
),
posts AS (
  SELECT *, seen IS NOT NULL AND event_time < seen - make_dt_interval(0, 0, 0, {watermark}) AS late
  FROM paired
),
on_time AS (SELECT * FROM posts WHERE NOT late),
clock AS (SELECT max(event_time) AS stream_time FROM posts)"""

GEO = """
geo_events AS (
  SELECT country, timestamp AS event_time,
    max(timestamp) OVER (PARTITION BY _partition ORDER BY _offset
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS seen
  FROM stream_geo WHERE timestamp IS NOT NULL
),
geo_marked AS (
  SELECT *, seen IS NOT NULL AND event_time < seen - make_dt_interval(0, 0, 0, {watermark}) AS late
  FROM geo_events
),
geo_clock AS (SELECT max(event_time) AS stream_time FROM geo_marked)"""

QUERIES: dict[str, str] = {
    "trending_categories": """WITH {posts}
SELECT category, window.start AS window_start, window.end AS window_end, count(*) AS posts
FROM on_time, clock WHERE category IS NOT NULL
GROUP BY category, window(event_time, '1 minute'), clock.stream_time
HAVING window.end > clock.stream_time - make_dt_interval(0, 0, 0, {watermark})
ORDER BY window_start, category""",
    "profile_popularity": """WITH {posts},
windows AS (
  SELECT '1h' AS window,
    CAST(date_trunc('MINUTE', stream_time) AS TIMESTAMP_NTZ) + INTERVAL 1 MINUTE AS window_end FROM clock
  UNION ALL
  SELECT '24h', CAST(date_trunc('HOUR', stream_time) AS TIMESTAMP_NTZ) + INTERVAL 1 HOUR FROM clock
),
bounded AS (
  SELECT window, window_end - CASE window WHEN '1h' THEN INTERVAL 1 HOUR ELSE INTERVAL 24 HOURS END
    AS window_start, window_end FROM windows
),
per_poster AS (
  SELECT w.window, o.poster_name, count(*) AS posts,
    max_by(o.follower_count, CASE WHEN o.follower_count IS NOT NULL
      THEN struct(o.event_time, o._partition, o._offset) END) AS follower_count,
    w.window_start, w.window_end
  FROM on_time AS o JOIN bounded AS w
    ON o.event_time >= w.window_start AND o.event_time < w.window_end
  WHERE o.poster_name IS NOT NULL
  GROUP BY w.window, o.poster_name, w.window_start, w.window_end
),
ranked AS (
  SELECT *, CAST(row_number() OVER (PARTITION BY window
    ORDER BY posts DESC, follower_count DESC NULLS LAST, poster_name ASC) AS INT) AS rank FROM per_poster
)
SELECT window, rank, poster_name, posts, follower_count, window_start, window_end
FROM ranked WHERE rank <= {top_k} ORDER BY window, rank""",
    "country_activity": """WITH {geo}
SELECT country,
  count_if(NOT late AND event_time > stream_time - INTERVAL 1 HOUR) AS events_1h,
  count_if(NOT late AND event_time > stream_time - INTERVAL 24 HOURS) AS events_24h,
  count(*) AS events_total
FROM geo_marked, geo_clock WHERE country IS NOT NULL GROUP BY country
ORDER BY events_total DESC, country""",
    "late_events": """WITH {posts}, {geo}
SELECT 'post' AS input, count(*) AS events, count_if(late) AS late_events,
  (SELECT count(*) FROM stream_pin) - count(*) AS unpaired_events,
  max(event_time) AS stream_time, CAST({watermark} AS DOUBLE) AS watermark_s FROM posts
UNION ALL
SELECT 'geo', count(*), count_if(late), CAST(0 AS BIGINT), max(event_time), CAST({watermark} AS DOUBLE)
FROM geo_marked""",
}
"""Each metric as one statement over the views ``stream_pin`` and ``stream_geo``."""


def metric_sql(name: str, watermark_s: float, top_k: int) -> str:
    watermark = f"{watermark_s:.6f}"
    parts = {
        "posts": POSTS.format(watermark=watermark).strip(),
        "geo": GEO.format(watermark=watermark).strip(),
    }
    return QUERIES[name].format(**parts, watermark=watermark, top_k=int(top_k))


def write_metrics(spark: Any, settings: Settings) -> dict[str, int]:
    """Rewrite every reproduced metric table from the stream tables; returns rows per metric."""
    for kind in ("pin", "geo"):
        spark.read.format("delta").load(tables.stream_table(settings, kind)).createOrReplaceTempView(
            f"stream_{kind}"
        )
    rows = {}
    for name in QUERIES:
        frame = spark.sql(metric_sql(name, settings.stream.watermark_s, settings.stream.top_k)).persist()
        frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
            tables.metrics_table(settings, name)
        )
        rows[name] = frame.count()
        frame.unpersist()
    return rows
