"""A batch run killed with SIGKILL at random points, then rerun, gives the tables of one full run."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pinpipe.config import load_settings
from pinpipe.engines import run_batch
from pinpipe.transform.queries import BatchOptions
from tests.processes import clean_env
from tests.unit.test_batch_incremental import lake_objects, put, snapshot

OBJECTS: list[list[tuple[str | None, int, int, int]]] = [
    [("a", 1, 0, 2), (None, 2, 1, 0)], [("b", 3, 2, 1)], [("a", 1, 1, 3), ("c", 4, 0, 2)],
    [(None, 2, 1, 0), ("d", 5, 2, 1)], [("b", 6, 0, 2)], [("e", 7, 1, 0), ("a", 8, 2, 1)],
]  # fmt: skip
"""Six objects per kind over two partitions: duplicates across increments, id-less pins, bad lines."""


def batch(workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pinpipe", "batch", "run", "--workdir", str(workdir), "--quiet"],
        env=clean_env(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_random_points_then_rerun_equals_one_full_run(tmp_path: Path, seed: int) -> None:
    """History of three objects per kind, three new ones; six SIGKILLs at random times during the
    incremental run (each rerun starts from what the killed ones committed), then a run to the end."""
    every = lake_objects(OBJECTS, partitions=2)
    full, step = load_settings(workdir=tmp_path / "full"), load_settings(workdir=tmp_path / "step")
    for kind, name, data in every:
        put(full, kind, name, data)
    expected = snapshot(full, run_batch(full, BatchOptions()).outputs)
    for kind, name, data in every[:9]:
        put(step, kind, name, data)
    run_batch(step, BatchOptions())
    for kind, name, data in every[9:]:
        put(step, kind, name, data)

    pristine = tmp_path / "pristine"  # the lake before the incremental run, to start again from
    shutil.copytree(step.workdir, pristine)
    trial = tmp_path / "trial"  # how long the incremental run takes here, on a copy
    shutil.copytree(step.workdir, trial)
    started = time.perf_counter()
    assert batch(trial).wait(timeout=120) == 0
    whole = time.perf_counter() - started
    rng = random.Random(seed)
    kills = attempts = 0
    while kills < 6 and attempts < 30:
        attempts += 1
        process = batch(step.workdir)
        time.sleep(rng.uniform(0.1, 1.0) * whole)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            kills += 1
        else:  # done before the kill: start the incremental run over, so that the next kill lands in it
            assert process.returncode == 0
            shutil.rmtree(step.workdir)
            shutil.copytree(pristine, step.workdir)
    assert kills == 6
    assert batch(step.workdir).wait(timeout=120) == 0
    assert snapshot(step, {}) == {k: v for k, v in expected.items() if not k.startswith("returned")}
