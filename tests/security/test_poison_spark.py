"""No poison records on Spark: the Spark batch and the Spark stream processor keep, quarantine and
dead-letter exactly what the DuckDB batch and the embedded stream processor do, and never stop.

One hostile workdir for the module: edge records sent through the API (years 1, 1600 and 9999, integers
at the BIGINT edges, numbers whose text a double does not give back, deep and unknown fields, strings
that look like numbers), and records another producer wrote straight into the log, past the API
(NaN, Infinity, 1e400, integers past BIGINT, dates and times that do not exist, lone surrogates;
JSON nested 100,000 deep into the streams). The lake sink writes one object per record, so each record meets
the engines' fast checks alone (a flagged object is read record by record); the stream records go to a
real Kafka broker for both stream processors. One SparkSession for the whole test session
(``tests/integration/spark_support.py``).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pinpipe import exact_json
from pinpipe.delta import read_table
from pinpipe.engines.spark_lake import typed_select
from pinpipe.log.base import OutgoingRecord
from pinpipe.schema import KINDS, Kind, stream_name, topic_name, validate_record
from pinpipe.streaming.processor import run_stream
from pinpipe.streaming.spark_stream import run_spark_stream
from pinpipe.tables import dead_letter_table, stream_table
from pinpipe.transform.clean import CLEAN_COLUMNS
from pinpipe.transform.queries import BatchOptions
from tests.integration.spark_support import same_batch_on_both_engines, same_rows, settings_for, spark
from tests.security.pipeline import pipeline, quick_pairing
from tests.security.records import EDGE_NUMBERS, EDGE_STRINGS

__all__ = ["spark"]

pytestmark = [pytest.mark.spark, pytest.mark.timeout(900)]

TIMES = [
    "0001-01-01 00:00:00", "1600-01-01 00:00:00", "1677-09-21 00:12:43", "2262-04-11 23:47:17",
    "9999-12-31 23:59:59", "2018-12-31 20:43:42", "2020-01-01", "2020-06-01T10:00:00",
    "2020-06-01 10:00:00.123456", "2020-06-01T10:00:00Z", "2020-06-01 10:00:00+14:00",
]  # fmt: skip
INTS = ["9223372036854775807", "-9223372036854775808", "0", "-0", "1"]
UNKNOWN = [
    '{"deep": [[[{"x": 1e400}]]], "big": 18446744073709551616}',
    '{"nan": "NaN", "huge": 1180591620717411303424, "tiny": 1e-400}',
]


def _record(kind: Kind, ind: int, /, **texts: str) -> str:
    """A record of ``kind`` as JSON text: plain values, then ``texts`` (field -> JSON text) on top."""
    plain: dict[Kind, dict[str, object]] = {
        "pin": {"index": ind, "unique_id": f"u{ind}", "title": "t", "follower_count": "1k",
                "poster_name": "p", "category": "art", "save_location": "Local save in /x", "downloaded": 1},
        "geo": {"ind": ind, "timestamp": "2020-01-01 00:00:00", "latitude": 1.5, "longitude": 2.5,
                "country": "X"},
        "user": {"ind": ind, "first_name": "A", "last_name": "B", "age": 30,
                 "date_joined": "2015-01-01 00:00:00"},
    }  # fmt: skip
    fields = {name: json.dumps(value) for name, value in plain[kind].items()} | texts
    return "{" + ", ".join(f"{json.dumps(name)}: {text}" for name, text in fields.items()) + "}"


def _through_the_api() -> dict[Kind, list[str]]:
    """Edge records for the API (it refuses those no table holds; the rest reach every consumer)."""
    strings = [json.dumps(s, ensure_ascii=False) for s in EDGE_STRINGS]
    sent: dict[Kind, list[str]] = {kind: [] for kind in KINDS}
    for i, number in enumerate(EDGE_NUMBERS):
        sent["geo"].append(_record("geo", i, latitude=number, longitude=number))
        sent["user"].append(_record("user", i, age=number))
        sent["pin"].append(_record("pin", i, index=number, downloaded=number))
    for i, text in enumerate(strings, start=100):
        sent["pin"].append(_record("pin", i, follower_count=text, title=text, save_location=text))
        sent["user"].append(_record("user", i, first_name=text, date_joined=text))
        sent["geo"].append(_record("geo", i, country=text, timestamp=text))
    for i, time in enumerate(TIMES, start=200):
        sent["geo"].append(_record("geo", i, timestamp=json.dumps(time)))
        sent["user"].append(_record("user", i, date_joined=json.dumps(time)))
    for i, ind in enumerate(INTS, start=300):
        for kind in KINDS:
            sent[kind].append(_record(kind, i, **{"index" if kind == "pin" else "ind": ind}))
    for i, extra in enumerate(UNKNOWN, start=400):
        for kind in KINDS:
            sent[kind].append(_record(kind, i, extra=extra))
    return sent


DEEP = "[" * 100_000 + "]" * 100_000
PAST_THE_API: dict[Kind, list[str]] = {
    "geo": [
        _record("geo", 500, latitude="NaN", longitude="Infinity"),
        _record("geo", 501, latitude="1e400"),
        _record("geo", 502, longitude="-Infinity"),
        _record("geo", 503, latitude="1" + "0" * 400),
        _record("geo", 504, ind="9223372036854775808"),
        _record("geo", 505, timestamp='"2020-13-01 00:00:00"'),
        _record("geo", 506, timestamp='"2020-02-30 12:00:00"'),
        _record("geo", 507, timestamp='"0000-01-01 00:00:00"'),
        _record("geo", 508, timestamp='"2020-01-01 24:00:00"'),
        _record("geo", 509, country='"\\ud800"'),
    ],
    "pin": [
        _record("pin", 500, index="NaN"),
        _record("pin", 501, downloaded="Infinity"),
        _record("pin", 502, follower_count="NaN"),
        _record("pin", 503, title='"\\udfff"'),
        _record("pin", 504, index="18446744073709551615"),
    ],
    "user": [
        _record("user", 500, age="-Infinity"),
        _record("user", 501, date_joined='"2021-02-29 00:00:00"'),
        _record("user", 502, ind="-9223372036854775809"),
    ],
}
"""Records another producer wrote into the topics and streams (the API refuses every one)."""
STREAM_ONLY: dict[Kind, list[str]] = {"pin": [], "geo": [], "user": [_record("user", 503, extra=DEEP)]}
"""Written past the API into the streams only: the DuckDB batch's bulk reader parses JSON nested this deep
and keeps the record, where Spark and the record-by-record reader cannot parse it."""


@dataclass(frozen=True)
class Hostile:
    workdir: Path
    prefix: str
    streams: dict[Kind, list[bytes]]
    """Each stream's records as stored, in offset order: what the API acknowledged, then the rest."""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    workdir = tmp_path_factory.mktemp("hostile") / "work"
    prefix = secrets.token_hex(6)
    with pipeline(workdir, prefix=prefix, **{"lake.flush_size": 1}) as p:
        for kind, texts in _through_the_api().items():
            p.send(kind, texts)
        assert p.accepted.refused and all(p.accepted.topics[k] for k in KINDS)
        writer = p.log.writer()
        for kind, texts in PAST_THE_API.items():
            for name, more in (
                (topic_name(prefix, kind), []),
                (stream_name(prefix, kind), STREAM_ONLY[kind]),
            ):
                writer.append(name, [OutgoingRecord(t.encode(), partition=0) for t in texts + more])
        writer.flush()
        p.sink()
        streams = {}
        for kind in KINDS:
            stored = sorted(p.stored(stream_name(prefix, kind)).items())
            streams[kind] = [record.value for _, record in stored]
    return Hostile(workdir, prefix, streams)


def test_the_spark_fast_read_passes_a_number_only_with_the_value_the_exact_reader_gives(spark: Any) -> None:
    """Each edge number as a geo ``ind``, ``latitude`` and ``longitude``: a line Spark's fast read passes
    (``_ok``) holds exactly the value ``schema.validate_record``'s reader gives (``-0.0`` keeps its sign,
    as DuckDB keeps it), and a line that rule refuses is never passed."""
    lines: list[tuple[int, str, str, str]] = []
    for number in EDGE_NUMBERS:
        for field in ("ind", "latitude", "longitude"):
            lines.append((len(lines), field, number, _record("geo", 7, **{field: number})))
    frame = spark.createDataFrame(
        [(i, 0, line) for i, _, _, line in lines], "_file bigint, _line bigint, line string"
    )
    frame.createOrReplaceTempView("edge_lines")
    typed = {r["_file"]: r for r in spark.sql(typed_select("geo", "edge_lines")).collect()}
    wrong: list[tuple[str, str, Any, object]] = []
    passed = set()
    for i, field, number, line in lines:
        record = exact_json.loads(line.encode())
        got = typed[i]
        if not got["_ok"]:
            continue  # left to the exact reader
        passed.add((field, number))
        if validate_record("geo", record):
            wrong.append((field, number, got[field], "refused"))
        elif repr(got[field]) != repr((int if field == "ind" else float)(record[field])):
            wrong.append((field, number, got[field], float(record[field])))
    assert not wrong, wrong
    assert {("latitude", "-0.0"), ("longitude", "-1e-400"), ("ind", "-0")} <= passed


def test_the_spark_batch_keeps_and_quarantines_what_duckdb_does(spark: Any, hostile: Hostile) -> None:
    duck, ours = same_batch_on_both_engines(
        hostile.workdir, BatchOptions(keep_duplicates=True), prefix=hostile.prefix
    )
    assert len(duck.quarantined) == sum(len(v) for v in PAST_THE_API.values())
    assert all(q.reason for q in ours.quarantined)
    assert all(ours.cleaned_rows[k] > 20 for k in KINDS), ours.cleaned_rows
    assert all(ours.outputs[name].num_rows for name in ("posts_per_category_by_year", "users_joined_by_year"))


def _dead_letters(settings: Any) -> dict[tuple[str, int], str]:
    rows = read_table(dead_letter_table(settings)).to_pylist()
    return {(r["stream"], r["offset"]): r["error"] for r in rows}


@pytest.mark.kafka
def test_the_spark_stream_cleans_and_dead_letters_what_the_embedded_one_does(
    spark: Any, kafka_log: Any, hostile: Hostile, tmp_path: Path
) -> None:
    writer = kafka_log.writer()
    for kind, values in hostile.streams.items():
        kafka_log.create_topic(stream_name(hostile.prefix, kind), 1)
        writer.append(stream_name(hostile.prefix, kind), [OutgoingRecord(v, partition=0) for v in values])
    writer.flush()
    options = {"log.url": kafka_log.url, "prefix": hostile.prefix, "stream.max_wait_s": 0.0}
    embedded, ours = (
        settings_for(tmp_path / "embedded", **options),
        settings_for(tmp_path / "spark", **options),
    )
    with quick_pairing():
        want = run_stream(embedded, until_idle=True)
        got = run_spark_stream(ours, until_idle=True)
    assert got.rows == want.rows and got.dead_letters == want.dead_letters
    assert want.dead_letters == sum(len(PAST_THE_API[k] + STREAM_ONLY[k]) for k in KINDS)
    dead = _dead_letters(ours)
    assert dead == _dead_letters(embedded)  # the same records, for the same reason
    assert all(dead.values()), dead
    for kind in KINDS:
        columns = [*CLEAN_COLUMNS[kind], "_partition", "_offset"]
        mine = read_table(stream_table(ours, kind)).select(columns)
        theirs: pa.Table = read_table(stream_table(embedded, kind)).select(columns)
        assert same_rows(mine, theirs), kind
