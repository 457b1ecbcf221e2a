"""The embedded log's own behaviour beyond the contract suite: URL options, partitioning details,
all-or-nothing appends, retention, durability settings, threads, topics coming and going."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from pinpipe.errors import (
    ConfigError,
    IdempotencyConflictError,
    LogError,
    LogUnavailableError,
    TopicNotFoundError,
)
from pinpipe.locations import embedded_url
from pinpipe.log import open_log
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.embedded import EmbeddedLog, parse_url


def make_log(tmp_path: Path, **options: object) -> EmbeddedLog:
    return EmbeddedLog(embedded_url(tmp_path / "log"), **options)  # type: ignore[arg-type]


def test_url_options_and_errors(tmp_path: Path) -> None:
    directory, options = parse_url(f"{embedded_url(tmp_path / 'x')}?partitions=6&retention_ms=1000")
    assert directory == tmp_path / "x" and options == {"partitions": 6, "retention_ms": 1000}
    log = open_log(f"{embedded_url(tmp_path / 'x')}?partitions=6&retention_bytes=10")
    assert isinstance(log, EmbeddedLog)
    assert log.default_partitions == 6 and log.retention_bytes == 10
    log.create_topic("t")
    assert log.topics() == {"t": 6}
    log.close()
    with pytest.raises(ConfigError, match="unknown embedded log option"):
        parse_url("embedded:///tmp/x?colour=red")
    with pytest.raises(ConfigError, match="bad value"):
        parse_url("embedded:///tmp/x?partitions=many")
    with pytest.raises(ConfigError):
        parse_url("embedded://")


def test_records_without_key_go_round_robin(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.create_topic("t", 3)
    placed = log.writer().append("t", [OutgoingRecord(b"x") for _ in range(30)])
    assert Counter(p for p, _ in placed) == {0: 10, 1: 10, 2: 10}
    log.close()


def test_an_append_is_all_or_nothing(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.create_topic("t", 2)
    writer = log.writer()
    with pytest.raises(LogError, match="out of range"):
        writer.append("t", [OutgoingRecord(b"a", idempotency_key="k1"), OutgoingRecord(b"b", partition=5)])
    with pytest.raises(LogError, match="bytes"):
        writer.append("t", [OutgoingRecord(b"a"), OutgoingRecord("text")])  # type: ignore[arg-type]
    assert log.end_offsets("t") == {0: 0, 1: 0}
    # the failed call did not keep its idempotency key either
    assert writer.append("t", [OutgoingRecord(b"a", idempotency_key="k1", partition=1)]) == [(1, 0)]
    log.close()


def test_connections_use_wal_and_full_sync(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    writer = log.writer()
    conn = writer._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    log.close()


def test_everything_survives_reopening(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.create_topic("t", 3)
    placed = log.writer().append(
        "t", [OutgoingRecord(f"{i}".encode(), idempotency_key=f"k{i}") for i in range(9)]
    )
    log.reader("g", ["t"]).commit({("t", 1): 2})
    log.close()

    again = make_log(tmp_path)
    assert again.topics() == {"t": 3}
    assert again.end_offsets("t") == {0: 3, 1: 3, 2: 3}
    assert again.committed("g", "t") == {1: 2}
    assert again.writer().append("t", [OutgoingRecord(b"0", idempotency_key="k0")]) == [placed[0]]
    records = again.reader("other", ["t"]).poll(100, 1)
    assert sorted(r.value for r in records) == sorted(f"{i}".encode() for i in range(9))
    again.close()


def test_retention_by_size_keeps_offsets_and_moves_readers_forward(tmp_path: Path) -> None:
    log = make_log(tmp_path, retention_bytes=100, retention_ms=None)
    log.create_topic("t", 1)
    writer = log.writer()
    writer.append("t", [OutgoingRecord(b"x" * 10, idempotency_key=f"k{i}") for i in range(30)])  # 300 bytes
    reader = log.reader("g", ["t"])
    reader.commit({("t", 0): 3})
    assert log.enforce_retention() == 20
    assert log.start_offsets("t") == {0: 20} and log.end_offsets("t") == {0: 30}
    assert [r.offset for r in reader.poll(100, 0.5)] == list(range(20, 30))  # committed 3 < start 20
    # offsets are never reused, and a dropped record's idempotency key is gone with it
    assert writer.append("t", [OutgoingRecord(b"y", idempotency_key="k0")]) == [(0, 30)]
    assert writer.append("t", [OutgoingRecord(b"y", idempotency_key="k25")]) == [(0, 25)]
    log.close()


def test_retention_by_age_can_empty_a_partition_without_resetting_it(tmp_path: Path) -> None:
    log = make_log(tmp_path, retention_ms=200)
    log.create_topic("t", 1)
    writer = log.writer()
    writer.append("t", [OutgoingRecord(b"old") for _ in range(5)])
    time.sleep(0.3)
    writer.append("t", [OutgoingRecord(b"new")])
    assert log.enforce_retention() == 5
    assert log.start_offsets("t") == {0: 5}
    time.sleep(0.3)
    assert log.enforce_retention() == 1
    log.close()
    again = make_log(tmp_path, retention_ms=200)
    assert again.start_offsets("t") == again.end_offsets("t") == {0: 6}
    assert again.writer().append("t", [OutgoingRecord(b"later")]) == [(0, 6)]
    assert again.enforce_retention() == 0
    again.close()


def test_writers_enforce_retention_on_their_own(tmp_path: Path) -> None:
    log = make_log(tmp_path, retention_bytes=50, retention_ms=None, retention_check_s=0)
    log.create_topic("t", 1)
    writer = log.writer()
    for _ in range(10):
        writer.append("t", [OutgoingRecord(b"x" * 10)])
    assert log.start_offsets("t")[0] >= 5
    log.close()


def test_one_writer_shared_by_threads(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.create_topic("t", 3)
    writer = log.writer()
    placed: list[tuple[int, int]] = []

    def work(n: int) -> None:
        for i in range(50):
            placed.extend(writer.append("t", [OutgoingRecord(f"{n}-{i}".encode(), key=f"{i}".encode())]))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(placed)) == 200
    ends = log.end_offsets("t")
    assert sum(ends.values()) == 200
    for p, end in ends.items():
        assert sorted(off for part, off in placed if part == p) == list(range(end))
    log.close()


def test_poll_is_bounded_and_fair_across_partitions(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.create_topic("t", 3)
    log.writer().append("t", [OutgoingRecord(b"x", partition=i % 3) for i in range(300)])
    reader = log.reader("g", ["t"])
    first = [reader.poll(10, 0.1) for _ in range(6)]
    assert all(len(batch) == 10 for batch in first)
    assert {r.partition for batch in first for r in batch} == {0, 1, 2}
    log.close()


def test_reader_picks_up_a_topic_created_later_and_survives_deletion(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    reader = log.reader("g", ["late"])
    assert reader.poll(10, 0.1) == []
    log.create_topic("late", 1)
    log.writer().append("late", [OutgoingRecord(b"1")])
    assert [r.value for r in reader.poll(10, 1)] == [b"1"]
    log.delete_topic("late")
    assert "late" not in log.topics()
    with pytest.raises(TopicNotFoundError):
        log.writer().append("late", [OutgoingRecord(b"2")])
    with pytest.raises(TopicNotFoundError):
        log.delete_topic("late")
    assert reader.poll(10, 0.1) == []
    log.create_topic("late", 2)
    assert log.writer().append("late", [OutgoingRecord(b"3", partition=1)]) == [(1, 0)]
    assert [r.value for r in reader.poll(10, 1)] == [b"3"]
    log.close()


def test_closed_writer_and_reader_refuse_work(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.create_topic("t", 1)
    writer, reader = log.writer(), log.reader("g", ["t"])
    log.close()  # closes its writers and readers too
    with pytest.raises(LogError):
        writer.append("t", [OutgoingRecord(b"x")])
    with pytest.raises(LogError):
        reader.poll(1, 0)


def test_unreadable_directory_is_a_log_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(LogError):
        EmbeddedLog(embedded_url(blocker / "log"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "log.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(LogError):
        EmbeddedLog(embedded_url(tmp_path / "bad"))
    assert sqlite3.sqlite_version_info >= (3, 35)


def test_a_file_that_is_not_a_log_is_not_retriable(tmp_path: Path) -> None:
    (tmp_path / "log.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(LogError) as caught:
        EmbeddedLog(embedded_url(tmp_path))
    assert not isinstance(caught.value, LogUnavailableError)


def test_group_commit_keeps_each_concurrent_call_all_or_nothing(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.create_topic("t", 2)
    writer = log.writer()
    results: dict[int, object] = {}
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(25):
            bad = n % 4 == 0 and i % 5 == 0
            records = [
                OutgoingRecord(f"{n}-{i}-{j}".encode(), idempotency_key=f"{n}-{i}-{j}") for j in range(3)
            ]
            if bad:
                records.append(OutgoingRecord(b"nope", partition=9))
            try:
                results[n * 100 + i] = writer.append("t" if n != 7 else "missing", records)
            except LogError as exc:
                results[n * 100 + i] = exc

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failures = {k: v for k, v in results.items() if isinstance(v, LogError)}
    assert all(isinstance(failures[700 + i], TopicNotFoundError) for i in range(25))
    assert sorted(failures) == sorted(
        [700 + i for i in range(25)] + [n * 100 + i for n in (0, 4) for i in range(0, 25, 5)]
    )
    stored = Counter(r.value for r in log.reader("g", ["t"]).poll(10_000, 1))
    expected = {
        f"{n}-{i}-{j}".encode()
        for n in range(7)
        for i in range(25)
        for j in range(3)
        if not (n % 4 == 0 and i % 5 == 0)
    }
    assert set(stored) == expected and set(stored.values()) == {1}
    assert sum(log.end_offsets("t").values()) == len(expected)
    log.close()


def test_concurrent_single_record_appends_share_commits(tmp_path: Path) -> None:
    """Every record of one commit carries the commit's append time: fewer distinct times than calls
    means calls shared commits (and fsyncs); each call's records still land in one commit."""
    log = make_log(tmp_path)
    log.create_topic("t", 3)
    writer = log.writer()
    barrier = threading.Barrier(16)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(20):
            writer.append(
                "t",
                [OutgoingRecord(f"{n}-{i}-{j}".encode(), idempotency_key=f"{n}-{i}-{j}") for j in range(2)],
            )

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = log.reader("g", ["t"]).poll(10_000, 1)
    assert len(records) == 16 * 20 * 2
    stamps = {r.value.decode().rsplit("-", 1)[0]: set[float]() for r in records}
    for r in records:
        stamps[r.value.decode().rsplit("-", 1)[0]].add(r.timestamp)
    assert all(len(times) == 1 for times in stamps.values())
    assert len({r.timestamp for r in records}) < 16 * 20
    log.close()


def test_commit_from_another_thread_does_not_wait_for_a_long_poll(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.create_topic("t", 1)
    reader = log.reader("g", ["t"])
    poller = threading.Thread(target=reader.poll, args=(10, 2.0))
    poller.start()
    time.sleep(0.1)
    started = time.monotonic()
    reader.commit({("t", 0): 0})
    assert time.monotonic() - started < 1.0
    poller.join()
    assert log.committed("g", "t") == {0: 0}
    log.close()


def test_a_log_of_another_layout_version_is_refused(tmp_path: Path) -> None:
    make_log(tmp_path).close()
    with sqlite3.connect(tmp_path / "log" / "log.db") as conn:
        conn.execute("PRAGMA user_version = 1")
    with pytest.raises(LogError, match="layout version 1"):
        make_log(tmp_path)


@pytest.mark.parametrize("version", [2, 3])
def test_an_older_layout_is_upgraded_in_place(tmp_path: Path, version: int) -> None:
    """Version 2 had no fingerprint column, version 3 no headers column: opening such a log adds them and
    keeps records and keys."""
    log = make_log(tmp_path)
    log.create_topic("t", 2)
    writer = log.writer()
    placed = writer.append("t", [OutgoingRecord(b"a", idempotency_key="k1")])
    writer.close()
    log.close()
    with sqlite3.connect(tmp_path / "log" / "log.db") as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE name GLOB 'r_*' AND type = 'table'")
        for (name,) in tables.fetchall():
            conn.execute(f"ALTER TABLE {name} DROP COLUMN headers")
            if version == 2:
                conn.execute(f"ALTER TABLE {name} DROP COLUMN fp")
        conn.execute(f"PRAGMA user_version = {version}")
    log = make_log(tmp_path)
    writer = log.writer()
    assert writer.append("t", [OutgoingRecord(b"a", idempotency_key="k1")]) == placed
    writer.append("t", [OutgoingRecord(b"h", partition=0, headers=(("trace", b"1"), ("empty", None)))])
    assert writer.append("t", [OutgoingRecord(b"b", idempotency_key="k2", fingerprint="f")]) != placed
    writer.close()
    assert sum(log.end_offsets("t").values()) == 3
    reader = log.reader("g", ["t"])
    stored = {r.value: r.headers for r in reader.poll(10, 1.0)}
    reader.close()
    assert stored[b"h"] == (("trace", b"1"), ("empty", None)) and stored[b"a"] == ()
    log.close()


def test_keyless_records_round_robin_per_topic_whatever_the_interleaving(tmp_path) -> None:
    """The i-th keyless record of a topic lands in partition i mod n, however appends to other topics
    interleave and across writer restarts, so the same sends give the same partitions."""
    from pinpipe.log.base import OutgoingRecord
    from pinpipe.log.embedded import EmbeddedLog

    log = EmbeddedLog(embedded_url(tmp_path / "log"), partitions=3)
    for topic in ("a", "b"):
        log.create_topic(topic)
    writer = log.writer()
    placed_a = [writer.append("a", [OutgoingRecord(b"x")])[0][0] for _ in range(2)]
    writer.append("b", [OutgoingRecord(b"y")])
    writer.close()
    writer = log.writer()
    placed_a += [p for p, _ in writer.append("a", [OutgoingRecord(b"x"), OutgoingRecord(b"x")])]
    writer.close()
    log.close()
    assert placed_a == [0, 1, 2, 0]


def test_one_group_keeps_keys_offsets_and_failures_per_call(tmp_path: Path) -> None:
    """Calls committed in one group: a key claimed by an earlier call of the group (or stored before)
    gives the same position, a call that fails leaves no record and no gap, and two topics interleave."""
    log = make_log(tmp_path)
    log.create_topic("t", 1)
    log.create_topic("u", 2)
    writer = log.writer()
    (stored,) = writer.append("t", [OutgoingRecord(b"s", idempotency_key="s", fingerprint="f")])

    def rec(value: bytes, key: str | None = None, fingerprint: str | None = None) -> OutgoingRecord:
        return OutgoingRecord(value, idempotency_key=key, fingerprint=fingerprint)

    results = writer.append_many(
        [
            ("t", [rec(b"a", "a", "f"), rec(b"b")]),
            ("t", [rec(b"c"), rec(b"a", "a", "other")]),  # conflicts with the first call's key
            ("t", [rec(b"a", "a", "f"), rec(b"s", "s", "f")]),  # both keys already claimed
            ("missing", [rec(b"m")]),
            ("u", [rec(b"u0"), rec(b"u1")]),
            (
                "t",
                [rec(b"d", "d"), rec(b"d", "d"), OutgoingRecord(b"e", partition=1)],
            ),  # out of range: all fails
            ("t", [rec(b"f")]),
        ]
    )
    writer.close()
    first, conflict, again, missing, other, out_of_range, last = results
    assert first == [(0, 1), (0, 2)]
    assert again == [(0, 1), stored]
    assert last == [(0, 3)]
    assert other == [(0, 0), (1, 0)]
    assert isinstance(conflict, IdempotencyConflictError)
    assert isinstance(missing, TopicNotFoundError)
    assert isinstance(out_of_range, LogError)
    values = [r.value for r in log.reader("g", ["t"]).poll(100, 1)]
    assert values == [b"s", b"a", b"b", b"f"]
    assert log.end_offsets("t") == {0: 4}
    log.close()


def test_a_group_larger_than_one_insert_statement_keeps_every_record_in_order(tmp_path: Path) -> None:
    """A group's rows go in as multi-row INSERTs of a bounded size: a call of 300 records to one
    partition and one spread over three are stored whole, in order, with the end offsets they moved."""
    log = make_log(tmp_path)
    log.create_topic("one", 1)
    log.create_topic("three", 3)
    writer = log.writer()
    values = [b'{"n":%d}' % n for n in range(300)]
    results = writer.append_many(
        [
            ("one", [OutgoingRecord(v, idempotency_key=f"k{i}") for i, v in enumerate(values)]),
            ("three", [OutgoingRecord(v) for v in values]),
            ("one", [OutgoingRecord(b"last")]),
        ]
    )
    assert results[0] == [(0, n) for n in range(300)] and results[2] == [(0, 300)]
    spread = results[1]
    assert not isinstance(spread, BaseException)
    assert Counter(p for p, _ in spread) == {0: 100, 1: 100, 2: 100}
    assert log.end_offsets("one") == {0: 301} and log.end_offsets("three") == {0: 100, 1: 100, 2: 100}
    reader = log.reader("g", ["one"])
    stored = []
    while batch := reader.poll(1_000, 0.05):
        stored += batch
    assert [r.value for r in stored] == [*values, b"last"]
    assert writer.append("one", [OutgoingRecord(b"again", idempotency_key="k7")]) == [(0, 7)]
    writer.close()
    log.close()


def test_every_kind_of_row_in_one_group_is_stored_as_given(tmp_path: Path) -> None:
    """Rows with and without a key, idempotency key, fingerprint and headers, committed in one group
    and one partition: each is read back byte for byte (an empty key stays empty, not NULL), with its
    idempotency key and fingerprint in their columns."""
    log = make_log(tmp_path)
    log.create_topic("t", 1)
    odd = bytes(range(256))
    given = [
        OutgoingRecord(b'{"a":1}', key=b"k"),
        OutgoingRecord(odd),
        OutgoingRecord(b"", key=b""),
        OutgoingRecord(b"v", key=odd, idempotency_key="i1", fingerprint="f1"),
        OutgoingRecord(b"w", idempotency_key="i2"),
        OutgoingRecord(b"x", headers=(("h", b"\x00"), ("n", None)), timestamp=12.5),
        OutgoingRecord(b"y", key=b"k", idempotency_key="i3", fingerprint="f3", headers=(("h", b""),)),
        OutgoingRecord(b"z", key=b"k"),
    ]
    writer = log.writer()
    results = writer.append_many([("t", given[:4]), ("t", given[4:])])
    writer.close()
    assert results == [[(0, n) for n in range(4)], [(0, n) for n in range(4, 8)]]
    stored = log.reader("g", ["t"]).poll(100, 1)
    assert [(r.offset, r.key, r.value, r.headers) for r in stored] == [
        (n, g.key, g.value, g.headers) for n, g in enumerate(given)
    ]
    assert all(type(r.value) is bytes and (r.key is None or type(r.key) is bytes) for r in stored)
    assert stored[5].timestamp == 12.5
    assert log.end_offsets("t") == {0: 8}
    log.close()
    with sqlite3.connect(tmp_path / "log" / "log.db") as conn:
        columns = conn.execute('SELECT "offset", ikey, fp FROM r_1_0 ORDER BY "offset"').fetchall()
    assert columns == [
        (0, None, None),
        (1, None, None),
        (2, None, None),
        (3, "i1", "f1"),
        (4, "i2", None),
        (5, None, None),
        (6, "i3", "f3"),
        (7, None, None),
    ]
