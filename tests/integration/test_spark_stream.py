"""``pinpipe stream run --engine spark``: Spark Structured Streaming from a real Kafka broker.

The first 300 posts of the seed-100 replay of the real data (plus malformed records) go to the Kafka
topics ``streaming-<prefix>-pin|geo|user``; the Spark job must write the same cleaned rows as the shared
cleaning (``clean_table``, the embedded processor's path), the same dead letters, the metric tables, and
nothing twice: neither on a rerun nor when the checkpoint forgot its last micro-batch (a crash between
the Delta commits and the checkpoint commit), which Delta's idempotent writes must absorb.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pinpipe.engines.delta import read_delta
from pinpipe.log.base import OutgoingRecord
from pinpipe.schema import KINDS, stream_name
from pinpipe.streaming.spark_stream import run_spark_stream
from pinpipe.streaming.views import SCHEMAS
from pinpipe.tables import dead_letter_table, metrics_table, stream_table
from pinpipe.transform.clean import CLEAN_COLUMNS, clean_table
from tests.integration.spark_support import same_rows, settings_for, spark

__all__ = ["spark"]

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.timeout(1800)]
POSTS = 300
BAD = {"pin": [b"not json", b'{"index": "7"}'], "geo": [b"[1]"], "user": []}


def test_spark_stream_from_kafka_exactly_once(
    spark: Any, kafka_bootstrap: str, kafka_log: Any, aicore: Path, tmp_path: Path
) -> None:
    prefix = secrets.token_hex(6)
    settings = settings_for(
        tmp_path,
        prefix=prefix,
        **{"log.url": f"kafka://{kafka_bootstrap}", "stream.watermark_s": 2e8, "stream.max_records": 400},
    )
    steps = [json.loads(line) for line in (aicore / "seed100_replay_first2524.jsonl").open()][:POSTS]
    values = {k: [s[k] for s in steps if s.get(k)] for k in KINDS}
    writer = kafka_log.writer()
    for kind in KINDS:
        topic = stream_name(prefix, kind)
        kafka_log.create_topic(topic, 2)
        records = [OutgoingRecord(json.dumps(v).encode(), str(v.get("ind")).encode()) for v in values[kind]]
        writer.append(topic, records + [OutgoingRecord(b) for b in BAD[kind]])
    writer.flush()

    summary = run_spark_stream(settings, until_idle=True)
    assert summary.rows == {k: len(values[k]) for k in KINDS}
    assert summary.dead_letters == 3
    assert summary.batches >= 2  # max_records=400 splits the ~900 records

    def tables() -> dict[str, pa.Table]:
        found = {k: read_delta(stream_table(settings, k)) for k in KINDS}
        found["dead"] = read_delta(dead_letter_table(settings))
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
    trending = read_delta(metrics_table(settings, "trending_categories"))
    popular = read_delta(metrics_table(settings, "profile_popularity"))
    assert trending.num_rows > 0 and sum(trending.column("posts").to_pylist()) <= len(values["pin"])
    assert set(popular.column("window").to_pylist()) == {"1h", "24h"}
    assert read_delta(metrics_table(settings, "country_activity")).num_rows > 0
    for name in ("trending_categories", "profile_popularity", "country_activity", "late_events"):
        types = read_delta(metrics_table(settings, name)).schema  # naive timestamps, as the embedded ones
        assert [f.type for f in types] == [f.type for f in SCHEMAS[name]], name

    # rerun: nothing new; then forget the last checkpointed batch (crash before the checkpoint commit)
    assert run_spark_stream(settings, until_idle=True).rows == {k: 0 for k in KINDS}
    checkpoint = settings.workdir / "spark-checkpoints" / f"stream-{prefix}" / "commits"
    commits = sorted(checkpoint.glob("[0-9]*"), key=lambda p: int(p.name))
    assert len(commits) >= 2
    commits[-1].unlink()  # with its checksum file: a crash before the commit leaves neither
    commits[-1].with_name(f".{commits[-1].name}.crc").unlink(missing_ok=True)
    run_spark_stream(settings, until_idle=True)
    again = tables()
    for name, table in first.items():
        assert again[name].num_rows == table.num_rows, name
