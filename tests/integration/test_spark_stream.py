"""``pinpipe stream run --engine spark``: Spark Structured Streaming from a real Kafka broker.

The first 300 posts of the seed-100 replay of the real data (plus malformed records and a pin with no
geo event) go to the Kafka topics ``streaming-<prefix>-pin|geo|user``. The Spark job, stopped after its
first micro-batch and restarted from its checkpoint, must write the same cleaned rows as the shared
cleaning (``clean_table``, the embedded processor's path), the same dead letters, nothing twice (neither
on a rerun nor when the checkpoint forgot its last micro-batch: a crash between the Delta commits and
the checkpoint commit), and the same seven metric tables as the embedded processor reading the same
topics: a restart or a replayed micro-batch must not count anything twice. With its checkpoint deleted
and the tables kept, it must refuse to start (Delta would skip the new records of batch ids 0, 1, ...).
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pinpipe.delta import read_table
from pinpipe.errors import StreamError
from pinpipe.schema import KINDS, stream_name
from pinpipe.streaming.processor import run_stream
from pinpipe.streaming.spark_stream import run_spark_stream
from pinpipe.streaming.views import SCHEMAS
from pinpipe.tables import dead_letter_table, metrics_table, stream_table
from pinpipe.transform.clean import CLEAN_COLUMNS, clean_table
from tests.integration.spark_support import same_rows, send_streams, settings_for, spark

__all__ = ["spark"]

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.timeout(1800)]
POSTS = 300
BAD = {"pin": [b"not json", b'{"index": "7"}'], "geo": [b"[1]"], "user": []}
WATERMARK_S = 1e8
"""About 3 years: the replay's posts span 5 years in random order, so some are late and some not."""


def metric_tables(settings: Any) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for name, schema in SCHEMAS.items():
        table = read_table(metrics_table(settings, name))
        assert table.schema.types == schema.types, name  # naive timestamps, as docs/metrics.md says
        found[name] = table.to_pylist()
    return found


def assert_same_metrics(got: dict[str, list[dict[str, Any]]], want: dict[str, list[dict[str, Any]]]) -> None:
    """Equal tables; decayed scores within 1e-9 relative (float sums in another order)."""
    for name, rows in want.items():
        if name == "category_scores":
            assert [r["score"] for r in got[name]] == pytest.approx([r["score"] for r in rows], rel=1e-9)
            strip = lambda table: [{k: v for k, v in r.items() if k != "score"} for r in table]  # noqa: E731
            assert strip(got[name]) == strip(rows), name
        else:
            assert got[name] == rows, name


def test_spark_stream_from_kafka_exactly_once(
    spark: Any, kafka_bootstrap: str, kafka_log: Any, aicore: Path, tmp_path: Path
) -> None:
    prefix = secrets.token_hex(6)
    options: dict[str, Any] = {
        "log.url": f"kafka://{kafka_bootstrap}",
        "stream.watermark_s": WATERMARK_S,
        "stream.max_records": 400,
    }
    settings = settings_for(tmp_path, prefix=prefix, **options)
    steps = [json.loads(line) for line in (aicore / "seed100_replay_first2524.jsonl").open()][:POSTS]
    values = {k: [s[k] for s in steps if s.get(k)] for k in KINDS}
    values["pin"].append({**values["pin"][0], "index": 99_999_999, "unique_id": "no-geo-event"})
    send_streams(kafka_log, prefix, values, BAD)

    # stopped after its first micro-batch (max_records=400 splits the ~900 records), then restarted
    batches: list[int] = []
    stopped = run_spark_stream(
        settings, until_idle=True, on_batch=lambda s: batches.append(s.batches), stop=lambda: bool(batches)
    )
    assert 0 < sum(stopped.rows.values()) < sum(len(v) for v in values.values())
    rest = run_spark_stream(settings, until_idle=True)
    assert rest.batches >= 1 and rest.pending_pins == 0

    def tables() -> dict[str, pa.Table]:
        found: dict[str, pa.Table] = {k: read_table(stream_table(settings, k)) for k in KINDS}
        found["dead"] = read_table(dead_letter_table(settings))
        return found

    first = tables()
    for kind in KINDS:
        expected = clean_table(kind, pa.Table.from_pylist(values[kind]))
        assert same_rows(first[kind].select(list(CLEAN_COLUMNS[kind])), expected), kind
        offsets = first[kind].select(["_partition", "_offset"]).to_pylist()
        assert len({(o["_partition"], o["_offset"]) for o in offsets}) == len(offsets)
    assert sorted(first["dead"].column("stream").to_pylist()) == sorted(
        stream_name(prefix, k) for k in KINDS for _ in BAD[k]
    )
    metrics = metric_tables(settings)
    post, geo = metrics["late_events"]
    assert post["events"] == len(values["pin"]) and post["unpaired_events"] == 1
    assert 0 < post["late_events"] < post["events"] and 0 < geo["late_events"] < geo["events"] == POSTS
    assert {r["window"] for r in metrics["profile_popularity"]} == {"1h", "24h"}
    assert sum(r["events"] for r in metrics["events_per_second"]) == sum(
        len(v) + len(BAD[k]) for k, v in values.items()
    )
    assert all(r["lag"] == 0 for r in metrics["lag"]) and len(metrics["lag"]) == 6
    for name in ("trending_categories", "category_scores", "country_activity"):
        assert metrics[name], name

    # rerun: nothing new; then forget the last checkpointed batch (crash before the checkpoint commit)
    assert run_spark_stream(settings, until_idle=True).rows == {k: 0 for k in KINDS}
    checkpoint = settings.workdir / "spark-checkpoints" / f"stream-{prefix}" / "commits"
    commits = sorted(checkpoint.glob("[0-9]*"), key=lambda p: int(p.name))
    assert len(commits) >= 2
    commits[-1].unlink()  # with its checksum file: a crash before the commit leaves neither
    commits[-1].with_name(f".{commits[-1].name}.crc").unlink(missing_ok=True)
    assert run_spark_stream(settings, until_idle=True).batches == 1
    again = tables()
    for name, table in first.items():
        assert again[name].num_rows == table.num_rows, name
    assert metric_tables(settings) == metrics  # the replayed micro-batch counted once

    # the embedded processor on the same topics, uninterrupted: the same seven metric tables
    embedded = settings_for(tmp_path / "embedded", prefix=prefix, **options)
    run_stream(embedded, until_idle=True)
    assert_same_metrics(metrics, metric_tables(embedded))

    # the checkpoint deleted, the tables kept: batch ids from 0 again would be skipped by Delta (new
    # records lost), so the job refuses before any Spark work
    shutil.rmtree(checkpoint.parent)
    with pytest.raises(StreamError, match=f"has planned no batch, but .*pinpipe-spark-stream-{prefix}-"):
        run_spark_stream(settings, until_idle=True)
