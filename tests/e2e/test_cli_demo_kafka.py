"""``pinpipe demo --log kafka://...`` twice on one prefix: the second run refuses to mix in the first run's
records (and deletes nothing) unless given --fresh, which deletes and recreates the topics and streams."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e.pipeline_cli import clean_env, pinpipe

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ITERATIONS = 100


def test_a_second_kafka_demo_refuses_to_mix_runs_unless_fresh(tmp_path: Path, kafka_bootstrap: str) -> None:
    env = clean_env(tmp_path)
    log = f"kafka://{kafka_bootstrap}"
    kafka_flags = ["--log", log, "--prefix", uuid.uuid4().hex[:12]]
    run = ["demo", "--iterations", str(ITERATIONS), "-q", *kafka_flags]
    first, second = tmp_path / "first", tmp_path / "second"

    out = pinpipe(*run, "--workdir", str(first), env=env).stdout
    assert f"dashboard --workdir {first} {' '.join(kafka_flags)}" in out, out[-2000:]

    for workdir in (first, second):
        again = subprocess.run(
            [sys.executable, "-m", "pinpipe", *run, "--workdir", str(workdir)],
            env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert again.returncode == 1, again.stdout[-2000:] + again.stderr
        error = again.stderr.strip().splitlines()[-1]
        assert "already holds records of prefix" in error and "give --fresh" in error, error
        assert f"{kafka_flags[-1]}.pin {ITERATIONS}" in error, error
    assert (first / "source.db").is_file() and (first / "lake").is_dir()  # the first run's state is kept
    assert not second.exists()

    out = pinpipe(*run, "--workdir", str(second), "--fresh", env=env).stdout
    assert "--fresh: deleted" in out
    for kind in ("pin", "geo", "user"):  # this run's records only, not twice as many
        assert f"{kind}: {ITERATIONS} records read" in out, out[-4000:]
    assert f"{3 * ITERATIONS} events in" in out, out[-4000:]
