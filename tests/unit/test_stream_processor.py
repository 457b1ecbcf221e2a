"""The stream processor on the in-memory log: cleaned rows, exactly once across crashes, dead letters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pinpipe import delta, tables
from pinpipe.config import Settings, load_settings
from pinpipe.errors import GroupMovedOnError, LogUnavailableError, StreamError
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.memory import MemoryLog, MemoryLogReader
from pinpipe.schema import KINDS, Kind, stream_name
from pinpipe.streaming import processor as processor_module
from pinpipe.streaming.offsets import committed_offsets
from pinpipe.streaming.processor import GROUP, StreamProcessor, run_stream
from pinpipe.streaming.views import STATE_METRICS
from pinpipe.transform.clean import CLEAN_COLUMNS, clean_table
from tests.unit.test_stream_support import (
    live_times,
    memory_log_with,
    metric_rows,
    read,
    replay_iterations,
    rounded,
    stream_rows,
)


def make_settings(settings: Settings, workdir: Path, **stream: Any) -> Settings:
    overrides = {"stream.max_records": 150, "stream.max_wait_s": 0.0}
    overrides.update({f"stream.{k}": v for k, v in stream.items()})
    return load_settings(workdir=workdir, **overrides)


def all_tables(s: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {kind: stream_rows(s, kind) for kind in KINDS}
    for name in STATE_METRICS:
        out[name] = metric_rows(s, name)
    return out


def test_stream_tables_equal_batch_cleaned_rows(settings: Settings, workdir: Path, aicore: Path) -> None:
    s = make_settings(settings, workdir)
    its = replay_iterations(aicore, 400)
    log = memory_log_with(s.prefix, its)
    summary = run_stream(s, log=log)
    assert summary.rows == {"pin": 400, "geo": 400, "user": 400}
    assert summary.dead_letters == 0
    reader = log.reader("check", [stream_name(s.prefix, k) for k in KINDS])
    records = sorted(reader.poll(10_000, 0), key=lambda r: (r.topic, r.partition, r.offset))
    for kind in KINDS:
        mine = [r for r in records if r.topic == stream_name(s.prefix, kind)]
        expected = clean_table(kind, pa.Table.from_pylist([json.loads(r.value) for r in mine])).to_pylist()
        got = [{c: row[c] for c in CLEAN_COLUMNS[kind]} for row in stream_rows(s, kind)]
        assert got == expected
        assert [(r["_partition"], r["_offset"]) for r in stream_rows(s, kind)] == [
            (r.partition, r.offset) for r in mine
        ]


def test_dead_letters_keep_stream_partition_offset_value_and_error(
    settings: Settings, workdir: Path, aicore: Path
) -> None:
    s = make_settings(settings, workdir)
    log = memory_log_with(s.prefix, replay_iterations(aicore, 20))
    w = log.writer()
    bad = [b"not json {", b"[1,2]", json.dumps({"ind": "seven", "country": "France"}).encode(), b"\xff\xfe"]
    placed = w.append(stream_name(s.prefix, "geo"), [OutgoingRecord(v, partition=1) for v in bad])
    w.append(stream_name(s.prefix, "pin"), [OutgoingRecord(json.dumps({"index": 1.5}).encode(), partition=0)])
    summary = run_stream(s, log=log)
    assert summary.rows["geo"] == 20 and summary.rows["pin"] == 20
    dead = sorted(read(tables.dead_letter_table(s)).to_pylist(), key=lambda d: (d["stream"], d["offset"]))
    geo_dead = [d for d in dead if d["stream"] == stream_name(s.prefix, "geo")]
    assert [(d["partition"], d["offset"]) for d in geo_dead] == placed
    assert [d["value"] for d in geo_dead] == bad
    assert "not JSON" in geo_dead[0]["error"]
    assert "must be a JSON object" in geo_dead[1]["error"]
    assert "field 'ind' must be int" in geo_dead[2]["error"]
    pin_dead = [d for d in dead if d["stream"] == stream_name(s.prefix, "pin")]
    assert len(pin_dead) == 1 and "field 'index' must be int" in pin_dead[0]["error"]


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4, 5, 7, 11])
def test_crash_between_commits_then_restart_is_exactly_once(
    settings: Settings, tmp_path: Path, aicore: Path, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    """Kill the processor at the n-th Delta commit of a micro-batch (stream tables, dead letters,
    state or views), reopen it mid-stream, and compare everything with an uninterrupted run."""
    its = live_times(replay_iterations(aicore, 300))
    extra: dict[Kind, list[bytes]] = {"geo": [b"oops"]}
    reference = make_settings(settings, tmp_path / "ref")
    run_stream(reference, log=memory_log_with(reference.prefix, its, extra=extra))
    expected = all_tables(reference)

    s = make_settings(settings, tmp_path / "crashy")
    log = memory_log_with(s.prefix, its, extra=extra)
    calls = {"n": 0}
    real_append, real_overwrite = delta.append, delta.overwrite

    def counting(real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] % 13 == crash_at:
                raise Crash(f"killed at commit {calls['n']}")
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(delta, "append", counting(real_append))
    monkeypatch.setattr(delta, "overwrite", counting(real_overwrite))
    crashes = 0
    while True:
        try:
            with StreamProcessor(s, log) as processor:
                processor.run(until_idle=True)
            break
        except Crash:
            crashes += 1
            assert crashes < 200
    monkeypatch.setattr(delta, "append", real_append)
    monkeypatch.setattr(delta, "overwrite", real_overwrite)
    run_stream(s, log=log)  # a clean final pass rewrites the views from the committed state
    assert crashes >= 3
    got = all_tables(s)
    for kind in KINDS:
        assert len(got[kind]) == 300
        assert got[kind] == expected[kind]
    for name in STATE_METRICS:
        assert rounded(got[name]) == rounded(expected[name]), name
    dead = read(tables.dead_letter_table(s)).to_pylist()
    assert [d["value"] for d in dead] == [b"oops"]


def test_a_failed_group_commit_does_not_stop_the_processor(
    settings: Settings, workdir: Path, aicore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log group's offsets are advisory (the tables hold the real ones): a broker dying or the group
    rebalancing while they are committed loses nothing, and a later micro-batch commits them."""
    s = make_settings(settings, workdir)
    log = memory_log_with(s.prefix, replay_iterations(aicore, 400))
    real_commit = MemoryLogReader.commit
    failures = [
        LogUnavailableError("Kafka: commit: all brokers down"),
        GroupMovedOnError("Kafka: rebalance"),
    ] * 3

    def flaky(self: MemoryLogReader, offsets: Any) -> None:
        if failures:
            raise failures.pop(0)
        real_commit(self, offsets)

    monkeypatch.setattr(MemoryLogReader, "commit", flaky)
    summary = run_stream(s, log=log)
    assert not failures
    assert summary.rows == {"pin": 400, "geo": 400, "user": 400}
    for kind in KINDS:
        topic = stream_name(s.prefix, kind)
        assert log.committed(GROUP, topic) == log.end_offsets(topic)


@pytest.mark.parametrize(
    ("owner", "method", "error"),
    [
        (MemoryLog, "end_offsets", "Kafka: end offsets: leader not available"),
        (MemoryLogReader, "poll", "Kafka: metadata: all brokers down"),
    ],
    ids=["end-offsets", "poll"],
)
def test_a_log_out_of_reach_for_a_while_does_not_stop_the_processor(
    settings: Settings,
    tmp_path: Path,
    aicore: Path,
    monkeypatch: pytest.MonkeyPatch,
    owner: type,
    method: str,
    error: str,
) -> None:
    """A broker dying makes reads fail for a while: the end offsets (a partition between leaders; the
    ends read before are kept) or a whole poll (its metadata refresh; nothing is read that micro-batch).
    The processor goes on and its tables equal an undisturbed run's."""
    its = live_times(replay_iterations(aicore, 300))
    reference = make_settings(settings, tmp_path / "ref")
    run_stream(reference, log=memory_log_with(reference.prefix, its))
    s = make_settings(settings, tmp_path / "flaky")
    log = memory_log_with(s.prefix, its)
    real = getattr(owner, method)
    calls = {"n": 0, "failed": 0}

    def flaky(self: Any, *args: Any) -> Any:
        calls["n"] += 1
        if 6 <= calls["n"] < 12:
            calls["failed"] += 1
            raise LogUnavailableError(error)
        return real(self, *args)

    monkeypatch.setattr(owner, method, flaky)
    run_stream(s, log=log)
    assert calls["failed"] == 6
    expected, got = all_tables(reference), all_tables(s)
    for kind in KINDS:
        assert got[kind] == expected[kind]
    for name in STATE_METRICS:
        assert rounded(got[name]) == rounded(expected[name]), name


def test_until_idle_fails_when_the_ends_stay_out_of_reach(
    settings: Settings, workdir: Path, aicore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--until-idle cannot say it is caught up without the streams' ends: after the patience it fails
    instead of ending as if it were, or waiting for ever."""
    s = make_settings(settings, workdir)
    log = memory_log_with(s.prefix, replay_iterations(aicore, 50))
    monkeypatch.setattr(processor_module, "UNTIL_IDLE_PATIENCE_S", 0.3)
    with StreamProcessor(s, log) as processor:

        def unreachable(topic: str) -> dict[int, int]:
            raise LogUnavailableError("Kafka: end offsets: all brokers down")

        monkeypatch.setattr(log, "end_offsets", unreachable)
        with pytest.raises(LogUnavailableError, match="not known to be caught up"):
            processor.run(until_idle=True)
        assert processor.summary.rows["pin"] == 50  # what it could read, it processed


def test_a_second_processor_on_the_same_tables_is_refused(settings: Settings, workdir: Path) -> None:
    s = make_settings(settings, workdir)
    from pinpipe.log.memory import MemoryLog

    log = MemoryLog()
    with StreamProcessor(s, log):
        second = StreamProcessor(s, log)  # built: configuration only
        with pytest.raises(StreamError, match="another stream processor"):
            second.start()
    StreamProcessor(s, log).start().close()


def test_metrics_state_round_trips_and_reads_the_first_format() -> None:
    """The state saved every micro-batch (orjson, geo events as one list) loads back to the same state,
    and a state saved in the first format (geo events per ind, order apart) still loads."""
    from pinpipe.streaming.metrics import MetricsConfig, MetricsState
    from pinpipe.streaming.pairing import PendingPin

    state = MetricsState(MetricsConfig(partitions=2))
    for i, (ind, country) in enumerate([(7, "Fr\u00e4nce"), (8, None), (7, "Fr\u00e4nce")]):
        state.arrived("geo", [100.0 + i])
        state.add_geo(i % 2, i, 100.0 + i, {"ind": ind, "timestamp": 1.6e9 + i, "country": country})
    state.pairer.add_pin("0", PendingPin(0, 101.5, 99, "poster", 5, "art"))
    text = state.to_json()
    again = MetricsState.from_json(state.config, text)
    assert again.to_json() == text
    assert list(again.pairer.geo_order) == list(state.pairer.geo_order)
    assert {k: list(v) for k, v in again.pairer.geos.items()} == {
        k: list(v) for k, v in state.pairer.geos.items()
    }
    assert again.pairer.geos[7][1] is again.pairer.geo_order[2]  # one tuple per event
    data = json.loads(text)
    events = data["pairer"].pop("geo_events")
    data["pairer"]["geos"] = [[ind, [[e[0], e[2], e[3]] for e in events if e[1] == ind]] for ind in (7, 8)]
    data["pairer"]["geo_order"] = [[e[0], e[1]] for e in events]
    data["format"] = 1
    old = MetricsState.from_json(state.config, json.dumps(data))
    assert old.to_json() == text


def test_compaction_merges_small_files_and_keeps_rows_and_offsets(
    settings: Settings, tmp_path: Path, aicore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every TIDY_EVERY micro-batches a clean-up starts, a table after each micro-batch, the appended
    tables' one-file-per-batch piles first: same rows as a run that never compacts, far fewer files, and
    the offsets still say what is in each table (a rerun writes nothing)."""
    from pinpipe.streaming import processor as processor_module

    its = replay_iterations(aicore, 300)
    reference = make_settings(settings, tmp_path / "ref", max_records=10)
    monkeypatch.setattr(processor_module, "TIDY_EVERY", 10**9)
    run_stream(reference, log=memory_log_with(reference.prefix, its))
    s = make_settings(settings, tmp_path / "compacted", max_records=10)
    monkeypatch.setattr(processor_module, "TIDY_EVERY", 5)
    log = memory_log_with(s.prefix, its)
    summary = run_stream(s, log=log)
    assert summary.batches >= 30
    for kind in KINDS:
        url = tables.stream_table(s, kind)
        plain = delta.open_table_if_exists(tables.stream_table(reference, kind))
        compacted = delta.open_table_if_exists(url)
        assert plain is not None and compacted is not None
        assert len(plain.file_uris()) >= 10
        assert len(compacted.file_uris()) < len(plain.file_uris()) / 2
        assert stream_rows(s, kind) == stream_rows(reference, kind)
        tps = [(stream_name(s.prefix, kind), p) for p in range(s.log.partitions)]
        offsets = committed_offsets(url, tps)
        assert offsets == committed_offsets(tables.stream_table(reference, kind), tps)
        assert sum(offsets.values()) == 300
    assert run_stream(s, log=log).rows == {k: 0 for k in KINDS}
