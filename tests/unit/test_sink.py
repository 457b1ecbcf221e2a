"""The lake sink on the in-memory log and a temporary file lake: layout, cut rules, commits, recovery."""

from __future__ import annotations

import io
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from pinpipe.errors import ConfigError, GroupMovedOnError, LogUnavailableError
from pinpipe.lake.formats import JsonLinesFormat, object_key, parse_key
from pinpipe.lake.sink import GROUP, LakeSink, SinkOptions
from pinpipe.lake.store import FileStore
from pinpipe.locations import file_url
from pinpipe.log.base import OutgoingRecord, Record, TopicPartition
from pinpipe.log.memory import MemoryLog, MemoryLogReader

TOPICS = ["t.pin", "t.geo", "t.user"]


def value(i: int, topic: str = "t.pin") -> bytes:
    return orjson.dumps({"ind": i, "topic": topic, "title": f"caf\u00e9 {i} ", "n": i * 1.5})


def put_records(log: MemoryLog, topic: str, partition: int, times: list[float], start: int = 0) -> None:
    """Append records with chosen record times (the log's append clock) to one partition."""
    parts = log._partitions(topic)
    for i, ts in enumerate(times, start=start):
        offset = len(parts[partition])
        parts[partition].append(Record(topic, partition, offset, None, value(i, topic), ts))


def fill(log: MemoryLog, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    writer = log.writer()
    for topic in TOPICS:
        for i in range(n):
            writer.append(topic, [OutgoingRecord(value(i, topic), key=str(rng.randint(0, 50)).encode())])


def clone(log: MemoryLog) -> MemoryLog:
    """The same records in a fresh log with no group commits (for a clean run to compare with)."""
    other = MemoryLog(partitions=log.default_partitions)
    other._parts = {topic: [list(part) for part in parts] for topic, parts in log._parts.items()}
    return other


def store_at(path: Path) -> FileStore:
    return FileStore(file_url(path))


def snapshot(store: FileStore) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list()}


def sink_all(log: MemoryLog, store: FileStore, **options: object) -> LakeSink:
    with LakeSink(log, store, TOPICS, SinkOptions(poll_timeout_s=0.01, **options)) as sink:  # type: ignore[arg-type]
        sink.run(until_idle=True)
    return sink


def lake_values(store: FileStore) -> list[bytes]:
    return [line for key in store.list() for line in store.get(key).splitlines()]


def log_values(log: MemoryLog) -> list[bytes]:
    return [r.value for t in TOPICS for part in log._partitions(t) for r in part]


def test_layout_padding_and_bytes(tmp_path: Path) -> None:
    log = MemoryLog(partitions=2)
    put_records(log, "t.pin", 1, [1.0] * 7)
    store = store_at(tmp_path / "lake")
    sink = sink_all(log, store, flush_size=3)
    keys = list(store.list())
    assert keys == [
        "topics/t.pin/partition=1/t.pin+1+0000000000.json",
        "topics/t.pin/partition=1/t.pin+1+0000000003.json",
        "topics/t.pin/partition=1/t.pin+1+0000000006.json",
    ]
    assert parse_key(keys[1]) == ("t.pin", 1, 3)
    assert object_key("a.b", 12, 12345678901) == "topics/a.b/partition=12/a.b+12+12345678901.json"
    # each line is the stored value exactly, every line (the last too) ends with "\n"
    assert store.get(keys[0]) == value(0) + b"\n" + value(1) + b"\n" + value(2) + b"\n"
    assert store.get(keys[2]) == value(6) + b"\n"
    assert (tmp_path / "lake" / keys[0]).is_file()
    assert sink.summary.topics["t.pin"].records == 7 and sink.summary.topics["t.pin"].objects == 3
    assert log.committed(GROUP, "t.pin") == {1: 7}


def test_flush_size_one_is_the_original_layout(tmp_path: Path) -> None:
    log = MemoryLog()
    fill(log, 20)
    store = store_at(tmp_path)
    sink_all(log, store, flush_size=1)
    keys = list(store.list())
    assert len(keys) == 60
    for key in keys:
        topic, p, offset = parse_key(key)  # type: ignore[misc]
        assert store.get(key) == log._partitions(topic)[p][offset].value + b"\n"


def test_every_record_once_in_offset_order(tmp_path: Path) -> None:
    log = MemoryLog()
    fill(log, 300)
    store = store_at(tmp_path)
    sink_all(log, store, flush_size=7)
    assert sorted(lake_values(store)) == sorted(log_values(log))
    for topic in TOPICS:
        for p, records in enumerate(log._partitions(topic)):
            keys = list(store.list(f"topics/{topic}/partition={p}/"))
            joined = b"".join(store.get(k) for k in keys)
            assert joined == b"".join(r.value + b"\n" for r in records)
            assert all(JsonLinesFormat().count(store.get(k)) <= 7 for k in keys)
            assert log.committed(GROUP, topic)[p] == len(records)


def test_rotate_interval_uses_record_time_not_the_clock(tmp_path: Path) -> None:
    log = MemoryLog(partitions=1)
    put_records(log, "t.pin", 0, [100.0, 101.0, 104.9, 105.0, 106.0, 200.0, 200.1])
    store = store_at(tmp_path)
    sink_all(log, store, flush_size=100, rotate_interval_s=5.0)
    counts = {parse_key(k)[2]: JsonLinesFormat().count(store.get(k)) for k in store.list()}  # type: ignore[index]
    assert counts == {0: 3, 3: 2, 5: 2}


def test_max_object_bytes_caps_memory_deterministically(tmp_path: Path) -> None:
    log = MemoryLog(partitions=1)
    put_records(log, "t.pin", 0, [1.0] * 50)
    store = store_at(tmp_path)
    size = len(value(10)) + 1
    sink_all(log, store, flush_size=10_000, max_object_bytes=size * 4)
    objects = list(store.list())
    assert len(objects) >= 12
    assert all(len(store.get(k)) <= size * 4 for k in objects)
    assert lake_values(store) == [r.value for r in log._partitions("t.pin")[0]]


def test_value_with_raw_newline_stays_one_line() -> None:
    fmt = JsonLinesFormat()
    data = fmt.encode([b'{\n  "a": 1\n}', b"not json\nat all", b'{"b":2}'])
    assert data == b'{"a":1}\nnot json\\nat all\n{"b":2}\n'
    assert fmt.count(data) == 3


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_idle_flush_changes_when_not_what(tmp_path: Path) -> None:
    log = MemoryLog(partitions=1)
    put_records(log, "t.pin", 0, [100.0, 101.0])
    clock = FakeClock(103.0)
    store = store_at(tmp_path / "a")
    opts = SinkOptions(
        flush_size=100,
        rotate_interval_s=10.0,
        idle_flush_s=2.0,
        poll_timeout_s=0,
        put_queue=0,
        commit_interval_s=0,
    )
    with LakeSink(log, store, ["t.pin"], opts, clock=clock) as sink:
        sink.step()
        assert list(store.list()) == []  # deadline 110 + 2 not reached
        clock.now = 111.9
        sink.step()
        assert list(store.list()) == []
        clock.now = 112.0
        sink.step()
        assert list(store.list()) == ["topics/t.pin/partition=0/t.pin+0+0000000000.json"]
        assert log.committed(GROUP, "t.pin") == {0: 2}
        # later records go to the next file, exactly as a run that never idled cuts them
        put_records(log, "t.pin", 0, [112.5, 113.0], start=2)
        sink.step()
        sink.run(until_idle=True)
    other = store_at(tmp_path / "b")
    sink_all(clone(log), other, flush_size=100, rotate_interval_s=10.0, idle_flush_s=2.0)
    assert snapshot(store) == snapshot(other)
    assert len(snapshot(other)) == 2


def test_idle_flush_waits_while_the_partition_is_behind(tmp_path: Path) -> None:
    log = MemoryLog(partitions=1)
    put_records(log, "t.pin", 0, [100.0, 101.0, 105.0])
    store = store_at(tmp_path)
    opts = SinkOptions(
        flush_size=100,
        rotate_interval_s=10.0,
        idle_flush_s=1.0,
        poll_records=2,
        poll_timeout_s=0,
        put_queue=0,
    )
    with LakeSink(log, store, ["t.pin"], opts, clock=FakeClock(1000.0)) as sink:
        sink.step()  # 2 of 3 records polled: the third one (t=105) still belongs to this file
        assert list(store.list()) == []
        sink.step()
    assert [JsonLinesFormat().count(store.get(k)) for k in store.list()] == [3]


def test_idle_flush_is_off_without_rotate_interval(tmp_path: Path) -> None:
    log = MemoryLog(partitions=1)
    put_records(log, "t.pin", 0, [1.0, 2.0])
    store = store_at(tmp_path)
    with LakeSink(
        log, store, ["t.pin"], SinkOptions(flush_size=10, idle_flush_s=0, poll_timeout_s=0)
    ) as sink:
        sink.step()
        sink.step()
        assert list(store.list()) == []
        sink.stop()
        summary = sink.run(until_idle=True)  # a stop request writes no partial file
    assert summary.stopped and list(store.list()) == [] and log.committed(GROUP, "t.pin") == {}


class CrashingStore(FileStore):
    """Dies (raises) before or after the n-th put, like a process killed around a write."""

    def __init__(self, url: str, crash_at: int, after_write: bool) -> None:
        super().__init__(url)
        self.crash_at = crash_at
        self.after_write = after_write
        self.puts: list[str] = []

    def put(self, key: str, data: bytes) -> None:
        self.puts.append(key)
        if len(self.puts) == self.crash_at and not self.after_write:
            raise KeyboardInterrupt("killed before the write")
        super().put(key, data)
        if len(self.puts) == self.crash_at and self.after_write:
            raise KeyboardInterrupt("killed after the write, before the commit")


def test_commit_only_after_the_object_is_written(tmp_path: Path) -> None:
    log = MemoryLog(partitions=1)
    put_records(log, "t.pin", 0, [1.0] * 10)
    store = CrashingStore(file_url(tmp_path), crash_at=2, after_write=False)
    sink = LakeSink(
        log,
        store,
        ["t.pin"],
        SinkOptions(flush_size=3, poll_records=10, poll_timeout_s=0, put_queue=0, commit_interval_s=0),
    )
    with sink, pytest.raises(KeyboardInterrupt):
        sink.step()
    # nothing committed inside the poll that died; the first object is there, the second is not
    assert log.committed(GROUP, "t.pin") == {}
    assert list(store.list()) == ["topics/t.pin/partition=0/t.pin+0+0000000000.json"]


class BrokerAway(MemoryLog):
    """Group commits and end offsets fail with LogUnavailableError while ``failures`` lasts (each failed
    commit uses one up), like Kafka while the group coordinator or a partition leader was on a broker just
    killed and another has not taken over yet."""

    failures = 0

    def reader(self, group: str, topics: Sequence[str]) -> MemoryLogReader:
        reader = super().reader(group, topics)
        commit = reader.commit

        def failing_commit(offsets: Mapping[TopicPartition, int]) -> None:
            if self.failures:
                self.failures -= 1
                raise LogUnavailableError("Kafka: commit: Commit failed: Local: Waiting for coordinator")
            commit(offsets)

        reader.commit = failing_commit  # type: ignore[method-assign]
        return reader

    def end_offsets(self, topic: str) -> dict[int, int]:
        if self.failures:
            raise LogUnavailableError(f"Kafka: end offsets of {topic!r}: Local: Timed out")
        return super().end_offsets(topic)


def test_a_broker_away_delays_commits_but_does_not_stop_the_sink(tmp_path: Path) -> None:
    log = BrokerAway(partitions=1)
    put_records(log, "t.pin", 0, [1.0] * 10)
    store = store_at(tmp_path)
    options = SinkOptions(
        flush_size=3, poll_records=10, poll_timeout_s=0, put_queue=0, commit_interval_s=0, rotate_interval_s=1
    )
    with LakeSink(log, store, ["t.pin"], options, clock=lambda: 100.0) as sink:
        log.failures = 1
        sink.step()  # three objects written; the commit and the idle flush's end offsets fail
        assert len(list(store.list())) == 3
        assert log.committed(GROUP, "t.pin") == {}
        sink.step()  # back: the idle flush writes the last record, the pending offsets are committed
    assert len(list(store.list())) == 4
    assert log.committed(GROUP, "t.pin") == {0: 10}


def test_the_final_commit_waits_for_the_coordinator(tmp_path: Path) -> None:
    log = BrokerAway(partitions=1)
    put_records(log, "t.pin", 0, [1.0] * 10)
    with LakeSink(log, store_at(tmp_path), ["t.pin"], SinkOptions(flush_size=3, poll_timeout_s=0)) as sink:
        log.failures = 3
        sink.run(until_idle=True)
    assert log.committed(GROUP, "t.pin") == {0: 10}


@pytest.mark.parametrize("after_write", [False, True])
def test_restart_after_a_crash_keeps_lake_objects_and_matches_a_clean_run(
    tmp_path: Path, after_write: bool
) -> None:
    log = MemoryLog()
    fill(log, 200)
    clean = store_at(tmp_path / "clean")
    sink_all(clone(log), clean, flush_size=4)
    store = CrashingStore(file_url(tmp_path / "lake"), crash_at=9, after_write=after_write)
    opts = SinkOptions(flush_size=4, poll_records=64, poll_timeout_s=0.01)
    with LakeSink(log, store, TOPICS, opts) as first, pytest.raises(KeyboardInterrupt):
        first.run(until_idle=True)
    survivors = snapshot(store)
    committed = {t: log.committed(GROUP, t) for t in TOPICS}
    uncommitted = []
    for key in survivors:
        parts = parse_key(key)
        assert parts is not None, key
        topic, partition, start = parts
        if start >= committed[topic].get(partition, 0):
            uncommitted.append(key)
    assert len(survivors) == (9 if after_write else 8)
    store.crash_at = -1
    store.puts.clear()
    with LakeSink(log, store, TOPICS, opts) as second:
        second.run(until_idle=True)
    assert snapshot(store) == snapshot(clean)
    assert not set(store.puts) & set(survivors)  # nothing already in the lake was written again
    kept = sum(t.recovered_objects for t in second.summary.topics.values())
    assert kept == len(uncommitted) and kept >= 1


def test_recovers_objects_written_with_another_flush_size(tmp_path: Path) -> None:
    log = MemoryLog(partitions=1)
    put_records(log, "t.pin", 0, [1.0] * 23)
    store = store_at(tmp_path)

    class NoCommitSink(LakeSink):
        def _commit(self, final: bool = False) -> None:  # the process dies before every commit
            self._dirty.clear()

    with NoCommitSink(
        log, store, ["t.pin"], SinkOptions(flush_size=5, poll_timeout_s=0, put_queue=0, commit_interval_s=0)
    ) as dying:
        dying.step()
    assert log.committed(GROUP, "t.pin") == {}
    before = snapshot(store)
    assert len(before) == 4  # 20 records in full files; 3 still buffered when it died
    sink = sink_all(log, store, flush_size=2)
    after = snapshot(store)
    assert {k: after[k] for k in before} == before
    assert sink.summary.topics["t.pin"].recovered_objects == 4
    assert lake_values(store) == [r.value for r in log._partitions("t.pin")[0]]
    assert list(after) == [object_key("t.pin", 0, o) for o in (0, 5, 10, 15, 20, 22)]
    assert log.committed(GROUP, "t.pin") == {0: 23}


@pytest.mark.parametrize("put_queue", [0, 3])
def test_random_crashes_converge_to_the_clean_lake(tmp_path: Path, put_queue: int) -> None:
    log = MemoryLog()
    fill(log, 150, seed=7)
    clean = store_at(tmp_path / "clean")
    sink_all(clone(log), clean, flush_size=3, rotate_interval_s=0.0)
    rng = random.Random(3)
    store = CrashingStore(file_url(tmp_path / "lake"), crash_at=-1, after_write=False)
    crashes = 0
    while True:
        store.puts.clear()
        store.crash_at = rng.randint(1, 12)
        store.after_write = rng.random() < 0.5
        opts = SinkOptions(
            flush_size=3,
            poll_records=rng.randint(1, 40),
            poll_timeout_s=0,
            put_queue=put_queue,
            commit_interval_s=0 if put_queue == 0 else 1.0,  # commit every poll, or rarely
        )
        try:
            with LakeSink(log, store, TOPICS, opts) as sink:
                sink.run(until_idle=True)
            break
        except KeyboardInterrupt:
            crashes += 1
    assert crashes >= 20
    assert snapshot(store) == snapshot(clean)


def test_parquet_objects_hold_the_same_rows(tmp_path: Path) -> None:
    log = MemoryLog(partitions=1)
    put_records(log, "t.pin", 0, [1.0] * 9)
    log._partitions("t.pin")[0].append(Record("t.pin", 0, 9, None, b'{"ind": "x", "extra": [1]}', 1.0))
    store = store_at(tmp_path)
    sink_all(log, store, flush_size=5, format="parquet")
    keys = list(store.list())
    assert keys == [object_key("t.pin", 0, 0, ".parquet"), object_key("t.pin", 0, 5, ".parquet")]
    first = pq.read_table(io.BytesIO(store.get(keys[0]))).to_pylist()
    assert first == [orjson.loads(value(i)) for i in range(5)]
    second = pq.read_table(io.BytesIO(store.get(keys[1]))).to_pylist()
    assert [row["ind"] for row in second] == ["5", "6", "7", "8", "x"]  # mixed types kept as text
    assert second[-1]["extra"] == [1] and second[0]["extra"] is None
    # recovery counts Parquet rows too: forget the commits and the lake still says where to go on
    log._commits.clear()
    sink = sink_all(log, store, flush_size=5, format="parquet")
    assert sink.summary.objects == 0 and sink.summary.topics["t.pin"].recovered_objects == 2


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError):
        SinkOptions(flush_size=0)
    with pytest.raises(ConfigError):
        SinkOptions(format="csv")


class FencedGroupLog(MemoryLog):
    """The in-memory log with Kafka's group interface and one member, whose consumer Kafka fences (as
    :class:`~pinpipe.log.kafka.group.KafkaGroupReader` reports it) right after the polls numbered in
    ``fenced_after``: commits then fail as when the group moved on, the next poll loses every partition
    and returns nothing, and the one after assigns them again from the committed offsets."""

    def __init__(self, fenced_after: set[int], partitions: int = 3) -> None:
        super().__init__(partitions=partitions)
        self.fenced_after = fenced_after
        self.events: list[str] = []

    def group_reader(
        self, group: str, topics: Sequence[str], listener: Any, instance_id: str | None = None
    ) -> FencedGroupReader:
        return FencedGroupReader(self, group, topics, listener)


class FencedGroupReader(MemoryLogReader):
    def __init__(self, log: FencedGroupLog, group: str, topics: Sequence[str], listener: Any) -> None:
        super().__init__(log, group, topics)
        self.log = log
        self.listener = listener
        self.polls = 0
        self.owned = False
        self.fatal = False

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        tps = [(t, p) for t in self._topics for p in range(len(self.log._partitions(t)))]
        if self.fatal:  # a new consumer joins: everything the old one owned is lost
            self.fatal = self.owned = False
            self._positions.clear()
            self.log.events.append("lost")
            self.listener.revoked(tps, True)
            return []
        if not self.owned:
            self.owned = True
            committed = self.log._commits.get(self._group, {})
            self.log.events.append("assigned")
            self.listener.assigned({tp: committed.get(tp) for tp in tps})
        self.polls += 1
        self.fatal = self.polls in self.log.fenced_after
        return super().poll(max_records, timeout)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.fatal:
            self.log.events.append("commit refused")
            raise GroupMovedOnError("Kafka: commit: Commit failed: Local: Fatal error")
        super().commit(offsets)


@pytest.mark.parametrize("put_queue", [0, 3])
def test_a_fenced_member_joins_again_and_the_lake_matches_a_clean_run(tmp_path: Path, put_queue: int) -> None:
    """Fenced mid-run with objects written but not committed, puts queued and files half full: the sink
    drops its partitions' state, starts again from the committed offsets when they come back, finds the
    objects already written, and with ``until_idle`` does not stop while it owns nothing."""
    log = FencedGroupLog(fenced_after={3, 7, 8})
    fill(log, 120, seed=5)
    clean = store_at(tmp_path / "clean")
    sink_all(clone(log), clean, flush_size=4)
    store = store_at(tmp_path / "lake")
    opts = SinkOptions(
        flush_size=4, poll_records=25, poll_timeout_s=0, put_queue=put_queue, commit_interval_s=0
    )
    with LakeSink(log, store, TOPICS, opts) as sink:
        sink.run(until_idle=True)
    assert snapshot(store) == snapshot(clean)
    assert log.events.count("lost") == 3 and "commit refused" in log.events
    assert sum(t.recovered_objects for t in sink.summary.topics.values()) >= 1
    assert {t: log.committed(GROUP, t) for t in TOPICS} == {t: log.end_offsets(t) for t in TOPICS}
