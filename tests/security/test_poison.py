"""No poison records: whatever the API acknowledges, every consumer processes, quarantines or dead-letters
without stopping; values the tables cannot hold are refused per record (42206, the field named), and
consumers set aside any that reach the log another way."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinpipe import tables
from pinpipe.delta import read_table
from pinpipe.lake.sink import run_sink
from pinpipe.log.base import OutgoingRecord
from pinpipe.schema import KINDS, Kind, stream_name, topic_name
from tests.security.pipeline import as_sent, pipeline, quick_pairing
from tests.security.records import records

FAR_TIMES = ["1600-01-01 00:00:00", "0001-01-01 00:00:00", "9999-12-31 23:59:59"]


def geo(**fields: object) -> dict[str, object]:
    base = {"ind": 1, "timestamp": "2020-01-01 00:00:00", "latitude": 1.0, "longitude": 2.0, "country": "X"}
    return base | fields


@pytest.mark.parametrize("timestamp", FAR_TIMES)
def test_a_far_timestamp_is_processed_by_the_stream_and_a_restart(tmp_path: Path, timestamp: str) -> None:
    with pipeline(tmp_path / "work") as p:
        p.send("geo", [json.dumps(geo(timestamp=timestamp))])
        assert len(p.accepted.streams["geo"]) == 1
        first = p.stream()
        again = p.stream()  # the old processor died here on every restart
    assert first.rows["geo"] == 1 and first.dead_letters == 0
    assert again.rows["geo"] == 0
    rows = read_table(tables.stream_table(p.settings, "geo")).to_pylist()
    assert [str(r["timestamp"]) for r in rows] == [timestamp]


@pytest.mark.parametrize("timestamp", FAR_TIMES)
def test_far_timestamps_reach_the_batch_tables_and_the_dashboard(tmp_path: Path, timestamp: str) -> None:
    with pipeline(tmp_path / "work") as p:
        p.send("geo", [json.dumps(geo(timestamp=timestamp))])
        p.sink()
        result = p.batch()
        p.stream()
        answers = p.dashboard_answers()
    assert result.cleaned_rows["geo"] == 1 and not result.quarantined
    assert set(answers.values()) == {200}, answers


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("ind", "9223372036854775808"),
        ("ind", "18446744073709551615"),
        ("ind", "-9223372036854775809"),
        ("ind", "1180591620717411303424"),
        ("latitude", "1e400"),
        ("longitude", "-1e400"),
        ("latitude", "1" + "0" * 400),
    ],
)
def test_the_api_refuses_values_no_table_holds_naming_the_field(
    tmp_path: Path, field: str, text: str
) -> None:
    record = json.dumps(geo()).replace(f'"{field}": ', f'"{field}": {text}, "_was": ', 1)
    with pipeline(tmp_path / "work") as p:
        p.send("geo", [record, json.dumps(geo())])
        assert [len(p.accepted.topics["geo"]), len(p.accepted.streams["geo"])] == [1, 1]
        assert len(p.accepted.refused) == 2
        assert all(f"field '{field}'" in error for error in p.accepted.refused), p.accepted.refused


POISON = [
    b'{"ind": 9223372036854775808, "timestamp": "2020-01-01 00:00:00", "country": "X"}',
    b'{"ind": 1, "latitude": 1e400, "longitude": 2, "country": "X"}',
    b'{"ind": 2, "latitude": NaN, "longitude": Infinity, "country": "X"}',
    b'{"ind": 6, "latitude": 1, "longitude": 2, "country": "\\ud800"}',
    b'{"ind": 7, "latitude": 1, "longitude": 2, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"ind": 3, "latitude": 1, "longitude": 2, "timestamp": "2020-01-01 00:00:00", "x": 1e400}',
    b'{"ind": 4, "latitude": 1, "longitude": 2, "x": 18446744073709551616, "timestamp": "9999-12-31"}',
    b'{"ind": 5, "timestamp": "0001-01-01 00:00:00", "latitude": 1180591620717411303424, "longitude": 0}',
]
POISON_SET_ASIDE = 5
"""Geo records another producer wrote straight into the log: the API refuses the first five (the fifth is
nested deeper than any JSON parser goes), and they are what the consumers set aside; the others are records
the API accepts (numbers as sent)."""


def test_records_written_past_the_api_are_set_aside_or_processed_never_fatal(tmp_path: Path) -> None:
    with pipeline(tmp_path / "work") as p:
        prefix = p.settings.prefix
        writer = p.log.writer()
        for name in (topic_name(prefix, "geo"), stream_name(prefix, "geo")):
            writer.append(name, [OutgoingRecord(v, partition=0) for v in POISON])
        writer.flush()
        p.sink()
        result = p.batch()
        summary = p.stream()
    kept = len(POISON) - POISON_SET_ASIDE
    assert result.cleaned_rows["geo"] == kept
    assert sorted(q.line or 0 for q in result.quarantined) == [1, 2, 3, 4, 5]
    assert summary.rows["geo"] == kept and summary.dead_letters == POISON_SET_ASIDE
    dead = read_table(tables.dead_letter_table(p.settings)).to_pylist()
    assert sorted(d["offset"] for d in dead) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("timestamp", ["0000-01-01 00:00:00", "2020-01-01 24:00:00", "2020-02-30 00:00:00"])
def test_a_date_and_time_that_does_not_exist_is_quarantined_alone_in_its_object(
    tmp_path: Path, timestamp: str
) -> None:
    """DuckDB reads year 0000 (1 BC) and 24:00 (the next day) as timestamps: the bulk reader kept them,
    although ``datetime.fromisoformat`` (the API's rule) refuses both."""
    values = [json.dumps(geo(ind=1)), json.dumps(geo(ind=2, timestamp=timestamp))]
    with pipeline(tmp_path / "work", **{"lake.flush_size": 1}) as p:
        writer = p.log.writer()
        writer.append(topic_name(p.settings.prefix, "geo"), [OutgoingRecord(v.encode()) for v in values])
        writer.flush()
        p.sink()
        result = p.batch()
    assert result.cleaned_rows["geo"] == 1
    assert [q.reason for q in result.quarantined] == [
        f"wrong shape: field 'timestamp' must be datetime, got {timestamp!r}"
    ]


def test_the_parquet_lake_keeps_records_holding_numbers_no_column_type_holds(tmp_path: Path) -> None:
    """1e400 in an unknown field made the whole record an unreadable ``_raw`` row (all fields null). The
    API stores such values as sent (another producer may too): they are written past it here."""
    values = [json.dumps(geo(ind=i, x=2**64 + i, latitude=2**70)) for i in range(3)]
    values += [json.dumps(geo(ind=7)).replace('"country"', '"z": 1e400, "country"')]
    with pipeline(tmp_path / "work", **{"lake.format": "parquet"}) as p:
        writer = p.log.writer()
        writer.append(topic_name(p.settings.prefix, "geo"), [OutgoingRecord(v.encode()) for v in values])
        writer.flush()
        run_sink(p.settings, log=p.log)
        result = p.batch()
        rows = read_table(tables.batch_table(p.settings, "geo")).to_pylist()
    assert result.cleaned_rows["geo"] == 4 and not result.quarantined
    assert sorted(r["ind"] for r in rows) == [0, 1, 2, 7]
    assert {r["coordinates"][0] for r in rows} == {float(2**70), 1.0}


EXAMPLES = int(os.environ.get("PINPIPE_POISON_EXAMPLES", "30"))
"""About a second each; PINPIPE_POISON_EXAMPLES=200 for a longer search."""


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.fixed_dictionaries({kind: st.lists(records(kind), min_size=1, max_size=6) for kind in KINDS}))
def test_whatever_the_api_acknowledges_flows_through_every_consumer(sent: dict[Kind, list[str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, quick_pairing(), pipeline(Path(tmp) / "work") as p:
        for kind, texts in sent.items():
            p.send(kind, texts)
        accepted = p.accepted
        prefix = p.settings.prefix
        for kind in KINDS:  # what is stored equals what was acknowledged, record by record
            for space, name in (
                (accepted.topics, topic_name(prefix, kind)),
                (accepted.streams, stream_name(prefix, kind)),
            ):
                stored = p.stored(name)
                assert len(stored) == len(space[kind])
                for text, partition, offset in space[kind]:
                    assert as_sent(stored[(partition, offset)].value) == as_sent(text)
            assert [t for t, _, _ in accepted.topics[kind]] == [t for t, _, _ in accepted.streams[kind]]
        p.sink()
        result = p.batch()
        summary = p.stream()
        answers = p.dashboard_answers()
        lake = {kind: p.lake_lines(kind) for kind in KINDS}
    quarantined = {kind: sum(1 for q in result.quarantined if q.kind == kind) for kind in KINDS}
    for kind in KINDS:
        assert lake[kind] == len(accepted.topics[kind])
        assert result.cleaned_rows[kind] + quarantined[kind] == len(accepted.topics[kind])
        assert quarantined[kind] == 0, result.quarantined  # the API let through only what tables hold
    assert sum(summary.rows.values()) + summary.dead_letters == sum(len(v) for v in accepted.streams.values())
    assert summary.dead_letters == 0
    assert set(answers.values()) == {200}, answers
