"""Several ``pinpipe sink run`` processes in one group on Kafka: they share the partitions, and joins,
leaves and ``kill -9`` of a worker leave the lake holding every record once, in the same objects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import confluent_kafka as ck
import pytest
from confluent_kafka import KafkaError, KafkaException

from pinpipe.lake.formats import parse_key
from pinpipe.lake.sink import GROUP
from pinpipe.lake.store import FileStore
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.kafka import KafkaLog, admin
from pinpipe.schema import topic_names
from pinpipe.status import collect_status
from tests.processes import clean_env, run_pinpipe

pytestmark = pytest.mark.kafka

FLUSH = 40
NOT_READY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
}


def write_wave(log: KafkaLog, topics: list[str], wave: int, count: int) -> None:
    writer = log.writer()
    for topic in topics:
        records = [
            OutgoingRecord(f"{topic}|{wave}|{i}".encode(), key=f"k{i % 17}".encode()) for i in range(count)
        ]
        writer.append(topic, records)
    writer.close()


def new_prefix(log: KafkaLog, first_wave: int) -> tuple[str, list[str]]:
    """A fresh prefix whose three batch topics (3 partitions each) hold a first wave of records."""
    prefix = uuid.uuid4().hex[:12]
    topics = list(topic_names(prefix).values())
    for topic in topics:
        log.create_topic(topic, 3)
    write_wave(log, topics, 1, first_wave)
    return prefix, topics


def worker(
    bootstrap: str, lake: Path, prefix: str, workdir: Path, *extra: str, err: Path | None = None
) -> subprocess.Popen[bytes]:
    """A ``pinpipe sink run`` process; its stderr goes to ``err`` (default: a new worker-*.err file)."""
    args = ["--log", f"kafka://{bootstrap}", "--lake", f"file://{lake}", "--prefix", prefix, *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "pinpipe", "sink", "run", "-q", "--flush-size", str(FLUSH), *args],
        env=clean_env(workdir),
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(err or workdir / f"worker-{time.monotonic_ns()}.err").open("wb"),  # read when a worker fails
    )


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """``kill -9`` the workers still running (a test's clean-up)."""
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def members(bootstrap: str) -> list[Any]:
    """The sink group's members as the group coordinator describes them; none while the coordinator is
    not ready yet (a fresh broker answers NOT_COORDINATOR at first)."""
    client = admin.AdminClient({"bootstrap.servers": bootstrap})
    try:
        return list(client.describe_consumer_groups([GROUP])[GROUP].result().members)
    except KafkaException as exc:
        if exc.args[0].code() not in NOT_READY:
            raise
        return []


def assignments(bootstrap: str) -> list[set[tuple[str, int]]]:
    """The partitions of each member of the sink group."""
    return [{(tp.topic, tp.partition) for tp in m.assignment.topic_partitions} for m in members(bootstrap)]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_workers_share_partitions_and_the_lake_stays_exactly_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = uuid.uuid4().hex[:12]
    topics = list(topic_names(prefix).values())
    lake = tmp_path / "lake"
    log = KafkaLog(f"kafka://{kafka_bootstrap}", partitions=3)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for topic in topics:
            log.create_topic(topic, 3)
        ours = {(t, p) for t in topics for p in range(3)}
        in_group = lambda: {tp for a in assignments(kafka_bootstrap) for tp in a if tp[0] in topics}  # noqa: E731
        write_wave(log, topics, 1, 500)
        procs.append(worker(kafka_bootstrap, lake, prefix, tmp_path))
        wait_for(lambda: in_group() == ours, 60, "the first worker to own every partition")
        procs.append(worker(kafka_bootstrap, lake, prefix, tmp_path))  # a join: partitions move
        wait_for(
            lambda: sum(1 for a in assignments(kafka_bootstrap) if a) == 2, 60, "two members with partitions"
        )
        shares = [a for a in assignments(kafka_bootstrap) if a]
        assert not shares[0] & shares[1] and shares[0] | shares[1] == ours

        def owners() -> set[str]:  # as `pinpipe status` shows them
            status = collect_status([log])
            parts = [info for t in topics for info in status["groups"].get(GROUP, {}).get(t, {}).values()]
            return {info["owner"] for info in parts} if len(parts) == len(ours) else set()

        wait_for(lambda: len(owners()) == 2 and "" not in owners(), 30, "status to show the two owners")
        assert collect_status([log])["brokers"] == {"1": kafka_bootstrap}
        write_wave(log, topics, 2, 500)
        time.sleep(2)
        before = {m.member_id for m in members(kafka_bootstrap)}
        procs[0].kill()  # kill -9 mid-run: its partitions go to the other after the session timeout
        procs[0].wait()
        write_wave(log, topics, 3, 500)
        procs.append(worker(kafka_bootstrap, lake, prefix, tmp_path))  # restarted
        write_wave(log, topics, 4, 333)
        wait_for(  # the dead member stays listed until its session times out: wait for the new one
            lambda: any(
                m.member_id not in before and m.assignment.topic_partitions for m in members(kafka_bootstrap)
            ),
            60,
            "the restarted worker to own partitions",
        )
        for proc in procs[1:]:
            proc.send_signal(signal.SIGTERM)  # a leave: complete objects written, the rest dropped
        for proc in procs[1:]:
            assert proc.wait(30) == 0, [f.read_text()[-2000:] for f in sorted(tmp_path.glob("worker-*.err"))]
        run_pinpipe(
            "sink", "run", "--until-idle", "-q", "--flush-size", str(FLUSH),
            "--log", f"kafka://{kafka_bootstrap}", "--lake", f"file://{lake}", "--prefix", prefix,
            workdir=tmp_path, timeout=120,
        )  # fmt: skip
    finally:
        kill_all(procs)
        log.close()

    chains = lake_chains(lake)
    assert sorted(v for objects in chains.values() for _, values in objects for v in values) == sorted(
        wave_values(topics, (1, 500), (2, 500), (3, 500), (4, 333))
    )  # every record once
    for tp, objects in chains.items():  # objects contiguous from 0, cut every FLUSH records, as one sink cuts
        starts = [start for start, _ in objects]
        assert starts == [i * FLUSH for i in range(len(objects))], tp
        assert all(len(values) == FLUSH for _, values in objects[:-1]), tp


def wave_values(topics: list[str], *waves: tuple[int, int]) -> list[bytes]:
    """The record values :func:`write_wave` wrote for these (wave, count) pairs."""
    return [f"{t}|{w}|{i}".encode() for t in topics for w, n in waves for i in range(n)]


def lake_chains(lake: Path) -> dict[tuple[str, int], list[tuple[int, list[bytes]]]]:
    """(topic, partition) -> its objects as (start offset, values), in offset order."""
    store = FileStore(f"file://{lake}")
    chains: dict[tuple[str, int], list[tuple[int, list[bytes]]]] = {}
    for key in store.list():
        parsed = parse_key(key)
        assert parsed is not None, key
        chains.setdefault(parsed[:2], []).append((parsed[2], store.get(key).splitlines()))
    return {tp: sorted(objects) for tp, objects in chains.items()}


def assert_exactly_once(lake: Path, expected: list[bytes]) -> None:
    """Every expected record once in the lake, each partition's objects contiguous from offset 0."""
    chains = lake_chains(lake)
    assert sorted(v for objects in chains.values() for _, values in objects for v in values) == sorted(
        expected
    )
    for tp, objects in chains.items():
        ends = [start + len(values) for start, values in objects]
        assert [start for start, _ in objects] == [0, *ends[:-1]], tp


def lake_records(lake: Path) -> int:
    return sum(len(values) for objects in lake_chains(lake).values() for _, values in objects)


def static_members(bootstrap: str, topics: list[str]) -> dict[str, tuple[str, str, set[tuple[str, int]]]]:
    """Group instance id -> (member id, client id, partitions of ``topics``) of the static members."""
    return {
        m.group_instance_id: (
            m.member_id,
            m.client_id,
            {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions if tp.topic in topics},
        )
        for m in members(bootstrap)
        if m.group_instance_id
    }


def test_a_static_worker_restarted_takes_its_partitions_back(kafka_bootstrap: str, tmp_path: Path) -> None:
    """``--group-instance-id``: the worker joins as a static member under that name (shown in its client
    id, which ``pinpipe status`` lists as owner); killed and started again, it gets the same partitions."""
    lake = tmp_path / "lake"
    names = ("sink-a", "sink-b")
    procs: list[subprocess.Popen[bytes]] = []
    with KafkaLog(f"kafka://{kafka_bootstrap}", partitions=3) as log:
        prefix, topics = new_prefix(log, 100)
    try:
        for name in names:
            procs.append(worker(kafka_bootstrap, lake, prefix, tmp_path, "--group-instance-id", name))

        def shared() -> bool:
            found = static_members(kafka_bootstrap, topics)
            return all(found.get(name, ("", "", set()))[2] for name in names)

        wait_for(shared, 60, "both static members to own partitions")
        before = static_members(kafka_bootstrap, topics)
        assert all(f"pinpipe-{name}-" in before[name][1] for name in names)
        assert before["sink-a"][2] | before["sink-b"][2] == {(t, p) for t in topics for p in range(3)}
        procs[0].kill()
        procs[0].wait()
        procs[0] = worker(kafka_bootstrap, lake, prefix, tmp_path, "--group-instance-id", "sink-a")

        def back() -> bool:  # the coordinator gives the new process a new member id under the old name
            member, _, owned = static_members(kafka_bootstrap, topics).get("sink-a", ("", "", set()))
            return member != before["sink-a"][0] and bool(owned)

        wait_for(back, 60, "the restarted sink-a to rejoin")
        after = static_members(kafka_bootstrap, topics)
        assert {name: found[2] for name, found in after.items()} == {
            name: found[2] for name, found in before.items()
        }
        assert after["sink-b"][0] == before["sink-b"][0]  # sink-b was not made to rejoin
    finally:
        kill_all(procs)


def take_the_name(bootstrap: str, name: str, topics: list[str]) -> None:
    """Join the sink group under the static member ``name`` held by a running worker, until this member
    has the worker's partitions, then close (a static member leaves no group on close): Kafka fences the
    worker at its next heartbeat, as it fences a member whose own older request arrives after it joined
    again (a coordinator failover)."""
    intruder = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "group.instance.id": name,
            "enable.auto.commit": False,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 6000,
        }
    )
    taken: list[object] = []
    intruder.subscribe(topics, on_assign=lambda consumer, partitions: taken.extend(partitions))
    try:
        deadline = time.monotonic() + 60
        while not taken:
            assert time.monotonic() < deadline, f"timed out joining as {name}"
            intruder.poll(0.2)
    finally:
        intruder.close()


def test_a_worker_fenced_by_kafka_joins_again_and_keeps_sinking(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Kafka fences a static worker (librdkafka then fails every poll and commit of that consumer with
    'Local: Fatal error'): the worker logs a warning, joins again under its name with a new consumer and
    goes on writing every record exactly once."""
    lake = tmp_path / "lake"
    err = tmp_path / "worker.err"
    with KafkaLog(f"kafka://{kafka_bootstrap}", partitions=3) as log:
        prefix, topics = new_prefix(log, 300)
        flush = ("--rotate-interval", "1", "--idle-flush", "0")  # partial objects too, once caught up
        proc = worker(
            kafka_bootstrap, lake, prefix, tmp_path, "--group-instance-id", "sink-f", *flush, err=err
        )
        try:

            def sunk(count: int) -> Callable[[], bool]:
                def check() -> bool:
                    assert proc.poll() is None, err.read_text()[-2000:]
                    return lake_records(lake) >= count

                return check

            wait_for(sunk(900), 60, "the first wave in the lake")
            take_the_name(kafka_bootstrap, "sink-f", topics)
            write_wave(log, topics, 2, 300)
            write_wave(log, topics, 3, 100)
            wait_for(sunk(2100), 60, "the later waves in the lake")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, err.read_text()[-2000:]
        finally:
            kill_all([proc])
    assert "joining the group again with a new consumer" in err.read_text()
    assert_exactly_once(lake, wave_values(topics, (1, 300), (2, 300), (3, 100)))


def test_two_live_workers_with_one_name_end_with_one_and_an_error_naming_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A genuine duplicate --group-instance-id: the two workers fence each other in turn until one gives
    up with a one-line error naming the name; the other keeps it and sinks everything exactly once."""
    lake = tmp_path / "lake"
    errs = [tmp_path / "first.err", tmp_path / "second.err"]
    flush = ("--rotate-interval", "1", "--idle-flush", "0")
    procs: list[subprocess.Popen[bytes]] = []
    with KafkaLog(f"kafka://{kafka_bootstrap}", partitions=3) as log:
        prefix, topics = new_prefix(log, 200)
        try:
            for err in errs:
                procs.append(
                    worker(
                        kafka_bootstrap, lake, prefix, tmp_path, "--group-instance-id", "dup", *flush, err=err
                    )
                )
                time.sleep(3)
            wait_for(
                lambda: any(p.poll() is not None for p in procs), 120, "one of the two workers to give up"
            )
            time.sleep(5)  # the other must not follow
            [gone] = [i for i, p in enumerate(procs) if p.poll() is not None]
            survivor = procs[1 - gone]
            assert procs[gone].returncode == 1
            last = errs[gone].read_text().strip().splitlines()[-1]
            assert last.startswith("pinpipe: error: ") and "--group-instance-id dup" in last, last
            write_wave(log, topics, 2, 100)
            wait_for(
                lambda: survivor.poll() is None and lake_records(lake) >= 900, 60, "the survivor to sink all"
            )
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(30) == 0, errs[1 - gone].read_text()[-2000:]
        finally:
            kill_all(procs)
    assert_exactly_once(lake, wave_values(topics, (1, 200), (2, 100)))
