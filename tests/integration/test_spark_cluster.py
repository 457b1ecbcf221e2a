"""``--engine spark --master spark://...`` on a Spark standalone cluster from ``bash infra/spark.sh cluster
start --workers 2``: a master and two worker JVMs on 127.0.0.1 (1 core, 1 GB each), started once for the
module. pinpipe runs as a subprocess (the driver: Python and its JVM), as a user runs it, so it can be
killed; its jars reach the executors through ``spark.jars``, lake and tables are ``file://`` paths.

- The batch job on the real-data lake (seed 100, 2,524 iterations) runs on both workers; one worker (its
  JVM and its executor: a lost machine) is killed with SIGKILL while its executor runs tasks. Spark runs
  the lost work on the other worker, and the ten CSVs equal DuckDB's byte for byte.
- The Structured Streaming job reads Kafka topics on the cluster; its driver is killed with SIGKILL after
  a micro-batch, mid-run; restarted, every record is in the Delta tables exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pinpipe.delta import read_table
from pinpipe.locations import file_url
from pinpipe.schema import KINDS, stream_name
from pinpipe.tables import dead_letter_table, stream_table
from pinpipe.transform.clean import CLEAN_COLUMNS, clean_table
from pinpipe.transform.queries import OUTPUTS
from tests.aicore import replay
from tests.conftest import AicoreDemo
from tests.integration.spark_support import same_rows, send_streams, settings_for
from tests.processes import clean_env
from tests.services import InfraService, running

pytestmark = [pytest.mark.spark, pytest.mark.timeout(900)]
CLUSTER_CONF = {"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g"}
"""Two shuffle partitions: one per executor core of the two workers."""


@pytest.fixture(scope="module")
def cluster(spark_jars: str, infra_state_dir: Path) -> Iterator[InfraService]:
    """The standalone cluster: ``.endpoint`` is ``spark://127.0.0.1:PORT``, ``.pids()`` master, workers."""
    state = infra_state_dir / "spark-cluster"
    state.mkdir(exist_ok=True)
    yield from running(InfraService("spark", state, start_args=("--workers", "2"), command=("cluster",)))


def driver_env(tmp: Path, spark_jars: str, tables: Path) -> dict[str, str]:
    return {
        **clean_env(tmp),
        "PINPIPE_ENGINE__SPARK_JARS": spark_jars,
        "PINPIPE_ENGINE__SPARK_CONF": json.dumps(CLUSTER_CONF),
        "PINPIPE_ENGINE__TABLES_URL": file_url(tables),
    }


def start_driver(args: list[str], env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    """``python -m pinpipe ARGS`` in its own process group (the Python driver and Spark's JVM under it)."""
    with output.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "pinpipe", *args], stdout=sink, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip


def kill_group(driver: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the driver's process group (Python and its JVM), if any of it is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()


def wait_for(what: str, done: Callable[[], bool], driver: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``done`` until true; fail if the driver exits first or after 5 minutes."""
    deadline = time.monotonic() + 300
    while not done():
        if driver.poll() is not None or time.monotonic() > deadline:
            driver.kill()
            pytest.fail(f"{what} did not happen (driver exit {driver.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def executor_logs(cluster: InfraService, worker: int) -> set[Path]:
    """The stderr of every executor the worker ran (``work/<app>/<executor>/stderr``)."""
    return set((cluster.state_dir / "spark" / "cluster" / f"worker-{worker}" / "work").glob("app-*/*/stderr"))


def tasks_run(cluster: InfraService, worker: int, known: set[Path]) -> int:
    """Tasks the worker's executors finished, except those of the executors in ``known``."""
    logs = executor_logs(cluster, worker) - known
    return sum(log.read_text(errors="replace").count("Finished task") for log in logs)


def test_batch_on_the_cluster_survives_a_lost_worker_and_equals_duckdb(
    cluster: InfraService, spark_jars: str, aicore_demo: AicoreDemo, tmp_path: Path
) -> None:
    duck_csv, spark_csv = aicore_demo.export, tmp_path / "csv-spark"  # the demo's batch ran on DuckDB
    run = ["batch", "run", "--workdir", str(aicore_demo.workdir), "--quiet"]
    known = executor_logs(cluster, 1) | executor_logs(cluster, 2)  # of earlier apps

    log = tmp_path / "driver.log"
    args = [*run, "--engine", "spark", "--master", str(cluster.endpoint), "--export", str(spark_csv)]
    driver = start_driver(args, driver_env(tmp_path, spark_jars, tmp_path / "tables-spark"), log)
    try:
        # the app's executors run on both workers; once worker 2's has finished tasks, the machine goes
        both = lambda: tasks_run(cluster, 1, known) > 0 and tasks_run(cluster, 2, known) > 0  # noqa: E731
        wait_for("tasks on both workers", both, driver, log)
        os.killpg(cluster.pids()[2], signal.SIGKILL)  # worker 2's JVM and the executor it started
        before = tasks_run(cluster, 1, known)
        assert driver.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        kill_group(driver)
        cluster.start()  # the lost worker back, for the next test
    assert tasks_run(cluster, 1, known) > before  # the surviving worker did the rest
    assert "engine=spark" in log.read_text()
    for name in OUTPUTS:
        duck = (duck_csv / f"{name}.csv").read_bytes()
        assert (spark_csv / f"{name}.csv").read_bytes() == duck, name
        assert duck.count(b"\n") > 1, name  # a header and real rows


POSTS = 120
MAX_RECORDS = 200
"""Two micro-batches of the ~363 records: the driver is killed once the first has committed (the second
planned or running), and the restarted driver finishes the second."""
BAD = {"pin": [b"not json"], "geo": [b"[1]"], "user": [b'{"ind": "7"}']}


@pytest.mark.kafka
def test_stream_on_the_cluster_survives_a_driver_kill_exactly_once(
    cluster: InfraService, spark_jars: str, kafka_bootstrap: str, kafka_log: Any, aicore: Path, tmp_path: Path
) -> None:
    prefix = secrets.token_hex(6)
    values = {k: [step[k] for step in replay(aicore)[:POSTS] if step.get(k)] for k in KINDS}
    send_streams(kafka_log, prefix, values, BAD)

    workdir, tables = tmp_path / "work", tmp_path / "tables"
    args = [
        "stream", "run", "--engine", "spark", "--master", str(cluster.endpoint),
        "--log", f"kafka://{kafka_bootstrap}", "--prefix", prefix, "--max-records", str(MAX_RECORDS),
        "--until-idle", "--quiet", "--workdir", str(workdir),
    ]  # fmt: skip
    env = driver_env(tmp_path, spark_jars, tables)
    settings = settings_for(workdir, prefix=prefix, **{"engine.tables_url": file_url(tables)})
    commits = workdir / "spark-checkpoints" / f"stream-{prefix}" / "commits"
    log = tmp_path / "driver.log"
    driver = start_driver(args, env, log)
    try:
        wait_for("a committed micro-batch", lambda: any(commits.glob("[0-9]*")), driver, log)
    finally:
        kill_group(driver)  # the Python driver and its JVM, mid-run
    written = read_table(stream_table(settings, "pin")).num_rows
    assert 0 < written < len(values["pin"])  # killed with work left
    log = tmp_path / "driver-2.log"
    driver = start_driver(args, env, log)  # restarted, until caught up
    try:
        assert driver.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        kill_group(driver)  # nothing of it outlives the test (its JVM exits by itself within seconds)

    for kind in KINDS:
        table = read_table(stream_table(settings, kind))
        expected = clean_table(kind, pa.Table.from_pylist(values[kind]))
        assert same_rows(table.select(list(CLEAN_COLUMNS[kind])), expected), kind
        origins = table.select(["_partition", "_offset"]).to_pylist()
        assert len({(o["_partition"], o["_offset"]) for o in origins}) == len(origins), kind
    dead = read_table(dead_letter_table(settings)).to_pylist()
    assert sorted(d["stream"] for d in dead) == sorted(stream_name(prefix, k) for k in KINDS for _ in BAD[k])
