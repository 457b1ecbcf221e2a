"""No poison records on the Spark engines: the records the API acknowledges at the edges of what the tables
hold (years 1, 1600 and 9999, an integer beyond 64 bits in a float field, -0, numbers no double holds in
unknown fields) and records another producer wrote past the API are processed, quarantined or
dead-lettered by the Spark batch job as by the DuckDB one, and the Spark stream job does not stop."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from pinpipe.engines import get_engine
from pinpipe.engines.delta import read_delta
from pinpipe.log.base import OutgoingRecord
from pinpipe.schema import stream_name, topic_name
from pinpipe.tables import batch_table, dead_letter_table
from pinpipe.transform.queries import BatchOptions
from tests.integration.spark_support import same_rows, settings_for, spark
from tests.security.pipeline import pipeline
from tests.security.test_poison import POISON, POISON_SET_ASIDE, geo

__all__ = ["spark"]

pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]

EDGES = [
    json.dumps(geo(ind=1, timestamp="0001-01-01 00:00:00")),
    json.dumps(geo(ind=2, timestamp="1600-01-01 00:00:00")),
    json.dumps(geo(ind=3, timestamp="9999-12-31 23:59:59.999999")),
    json.dumps(geo(ind=4, timestamp="2020-01-01T10:00:00+14:00", latitude=2**70)),
    json.dumps(geo(ind=5)).replace('"ind": 5', '"ind": -0, "x": 1e400, "y": 18446744073709551616'),
    json.dumps(geo(ind=6, timestamp="2020-W01-1", latitude=1e-300)),
]
USERS = [
    json.dumps({"ind": 1, "first_name": "A", "last_name": "B", "age": -(2**63), "date_joined": "0001-01-01"}),
    json.dumps(
        {
            "ind": 2,
            "first_name": "\u0000",
            "last_name": "é",
            "age": 2**63 - 1,
            "date_joined": "9999-12-31",
        }
    ),
]


def test_spark_batch_takes_the_edge_records_as_duckdb_does(spark: Any, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    with pipeline(workdir) as p:
        p.send("geo", EDGES)
        p.send("user", USERS)
        assert len(p.accepted.topics["geo"]) == len(EDGES) and len(p.accepted.topics["user"]) == len(USERS)
        writer = p.log.writer()
        writer.append(topic_name(p.settings.prefix, "geo"), [OutgoingRecord(v) for v in POISON])
        writer.flush()
        p.sink()
    options = BatchOptions(keep_duplicates=True)
    duck = get_engine("duckdb", settings_for(workdir, "tables-duckdb")).run_batch(options)
    ours = get_engine("spark", settings_for(workdir, "tables-spark")).run_batch(options)
    kept = len(POISON) - POISON_SET_ASIDE
    assert duck.cleaned_rows == {"pin": 0, "geo": len(EDGES) + kept, "user": 2}
    assert ours.cleaned_rows == duck.cleaned_rows
    assert sorted(q.line or 0 for q in ours.quarantined) == sorted(q.line or 0 for q in duck.quarantined)
    assert len(duck.quarantined) == POISON_SET_ASIDE
    for kind in ("geo", "user"):
        want = read_delta(batch_table(settings_for(workdir, "tables-duckdb"), kind))
        got = read_delta(batch_table(settings_for(workdir, "tables-spark"), kind))
        assert same_rows(got, want), kind


@pytest.mark.kafka
def test_spark_stream_takes_the_edge_records_and_sets_the_poison_aside(
    spark: Any, kafka_bootstrap: str, kafka_log: Any, tmp_path: Path
) -> None:
    from pinpipe.streaming.spark_stream import run_spark_stream

    prefix = secrets.token_hex(6)
    settings = settings_for(tmp_path, prefix=prefix, **{"log.url": f"kafka://{kafka_bootstrap}"})
    kafka_log.create_topic(stream_name(prefix, "geo"), 2)
    writer = kafka_log.writer()
    values = [v.encode() for v in EDGES] + POISON
    writer.append(stream_name(prefix, "geo"), [OutgoingRecord(v, partition=0) for v in values])
    writer.flush()
    summary = run_spark_stream(settings, until_idle=True)
    again = run_spark_stream(settings, until_idle=True)  # and a restart
    kept = len(POISON) - POISON_SET_ASIDE
    assert summary.rows["geo"] == len(EDGES) + kept and summary.dead_letters == POISON_SET_ASIDE
    assert again.rows["geo"] == 0 and again.dead_letters == 0
    dead = read_delta(dead_letter_table(settings)).to_pylist()
    assert sorted(d["offset"] for d in dead) == [len(EDGES) + i for i in range(POISON_SET_ASIDE)]
