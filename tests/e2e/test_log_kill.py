"""kill -9 of a process appending to the embedded log: every acknowledged record survives, exactly once.

A child process appends batches in a loop and, after each ``append`` returned, writes one line per record
``batch partition offset value`` to a file (flushed). The test kills it with SIGKILL at random moments and
restarts it from the batch after the last acknowledged one, re-sending the batch that was in flight with
the same idempotency keys (like a retrying client). At the end every acknowledged record is in the log at
its acknowledged position, and no value is there twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pinpipe.locations import embedded_url
from pinpipe.log.embedded import EmbeddedLog

CHILD = textwrap.dedent(
    """
    import sys
    from pinpipe.log.embedded import EmbeddedLog
    from pinpipe.log.base import OutgoingRecord
    url, batch = sys.argv[1], int(sys.argv[2])
    writer = EmbeddedLog(url).writer()
    out = sys.stdout
    while True:
        records = [
            OutgoingRecord(f"{batch}-{i}".encode(), key=f"k{i}".encode() if i % 2 else None,
                           idempotency_key=f"{batch}-{i}")
            for i in range(50)
        ]
        placed = writer.append("t", records)
        out.write("".join(f"{batch} {p} {o} {r.value.decode()}\\n" for (p, o), r in zip(placed, records)))
        out.flush()
        batch += 1
    """
)

KILLS = 6


def read_acks(path: Path) -> list[tuple[int, int, int, str]]:
    acks = []
    for line in path.read_text().splitlines(keepends=True):
        parts = line.split()
        if line.endswith("\n") and len(parts) == 4:
            acks.append((int(parts[0]), int(parts[1]), int(parts[2]), parts[3]))
    return acks


def test_acknowledged_appends_survive_sigkill_exactly_once(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    url = embedded_url(tmp_path / "log")
    log = EmbeddedLog(url)
    log.create_topic("t", 3)
    acks: list[tuple[int, int, int, str]] = []
    next_batch = 0
    for round_ in range(KILLS):
        out = tmp_path / f"acks-{round_}.txt"
        with out.open("w") as sink:
            child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(next_batch)], stdout=sink)
        deadline = time.monotonic() + 60
        while out.stat().st_size == 0 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.poll() is None, f"child died on its own (seed {seed})"
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
        round_acks = read_acks(out)
        assert round_acks, f"round {round_} acknowledged nothing (seed {seed})"
        acks.extend(round_acks)
        next_batch = max(batch for batch, *_ in round_acks) + 1

    reader = log.reader("check", ["t"])
    stored: dict[str, list[tuple[int, int]]] = {}
    while records := reader.poll(5000, 0.2):
        for r in records:
            stored.setdefault(r.value.decode(), []).append((r.partition, r.offset))
    log.close()

    duplicates = {v: where for v, where in stored.items() if len(where) > 1}
    assert not duplicates, f"stored twice (seed {seed}): {list(duplicates.items())[:5]}"
    missing = [(v, (p, o)) for _, p, o, v in acks if stored.get(v) != [(p, o)]]
    assert not missing, f"acknowledged but not at its position (seed {seed}): {missing[:5]}"
    # every batch up to the last acknowledged one is complete: the in-flight batches were retried
    assert len(stored) >= 50 * next_batch
    assert all(f"{b}-{i}" in stored for b in range(next_batch) for i in range(50))
    print(f"seed {seed}: {len(acks)} acknowledged, {len(stored)} stored, {next_batch} batches")
