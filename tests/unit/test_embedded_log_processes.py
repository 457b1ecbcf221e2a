"""The embedded log shared by several processes at once, as the API server, the lake sink, the stream
processor and ``pinpipe status`` share it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pinpipe.locations import embedded_url
from pinpipe.log.embedded import EmbeddedLog

WRITER = textwrap.dedent(
    """
    import sys, time
    from pinpipe.log.embedded import EmbeddedLog
    from pinpipe.log.base import OutgoingRecord
    url, name = sys.argv[1], sys.argv[2]
    batches, size, delay = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    log = EmbeddedLog(url)
    writer = log.writer()
    time.sleep(delay)
    for b in range(batches):
        batch = [OutgoingRecord(f"{name}-{b}-{i}".encode(), key=f"{i}".encode()) for i in range(size)]
        writer.append("t", batch)
    reader = log.reader(f"group-{name}", ["t"])
    reader.commit({("t", 0): 1, ("t", 2): 7})
    log.close()
    """
)


def start_writer(url: str, name: str, batches: int, size: int, delay: float) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", WRITER, url, name, str(batches), str(size), str(delay)]
    return subprocess.Popen(args)


def test_a_reader_sees_another_process_append_within_a_fraction_of_a_second(tmp_path: Path) -> None:
    url = embedded_url(tmp_path / "log")
    log = EmbeddedLog(url)
    log.create_topic("t", 3)
    reader = log.reader("g", ["t"])
    assert reader.poll(10, 0.05) == []
    proc = start_writer(url, "w", 1, 1, 1.0)
    records = reader.poll(10, 30)
    seen_at = time.time()
    assert proc.wait(30) == 0
    assert [r.value for r in records] == [b"w-0-0"]
    assert seen_at - records[0].timestamp < 0.5
    assert log.committed("group-w", "t") == {0: 1, 2: 7}
    log.close()


def test_two_writer_processes_and_a_reader_at_once(tmp_path: Path) -> None:
    url = embedded_url(tmp_path / "log")
    log = EmbeddedLog(url)
    log.create_topic("t", 3)
    reader = log.reader("g", ["t"])
    procs = [start_writer(url, name, 20, 100, 0.0) for name in ("a", "b")]
    seen: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + 60
    while len(seen) < 4000 and time.monotonic() < deadline:
        seen.extend((r.partition, r.offset, r.value) for r in reader.poll(500, 0.5))
    assert [p.wait(60) for p in procs] == [0, 0]
    assert len(seen) == 4000
    values = sorted(v for _, _, v in seen)
    expected = sorted(f"{n}-{b}-{i}".encode() for n in "ab" for b in range(20) for i in range(100))
    assert values == expected
    ends = log.end_offsets("t")
    assert sum(ends.values()) == 4000
    for p, end in ends.items():
        assert sorted(off for part, off, _ in seen if part == p) == list(range(end))
    assert log.groups() == ["group-a", "group-b"]
    log.close()
