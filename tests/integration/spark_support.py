"""The one SparkSession of a test session, and the synthetic lakes the Spark tests compare engines on (the
real-data lake is the session's ``aicore_demo``, tests/conftest.py).

The session runs ``local[2]`` with the jars from ``infra/spark.sh`` (fixture ``spark_jars``: with CI=true a
missing Java or jar fails, never skips), 2 GB of driver memory, no UI, and its JVM in
America/Los_Angeles: the naive-timestamp rule (docs/data-rules.md: 2018-12-31 20:43:42 stays in 2018) is
proven by every comparison made on this session.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pinpipe.config import Settings, load_settings
from pinpipe.delta import read_table
from pinpipe.engines import get_engine
from pinpipe.engines.base import BatchResult
from pinpipe.locations import file_url
from pinpipe.log.base import OutgoingRecord
from pinpipe.schema import KINDS, stream_name
from pinpipe.tables import batch_table
from pinpipe.transform.queries import OUTPUTS, BatchOptions
from tests.processes import run_pinpipe

REPO = Path(__file__).resolve().parents[2]
JVM_ZONE = "America/Los_Angeles"
SPARK_TEST_CONF = {
    "spark.driver.memory": "2g",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "2",
    "spark.driver.extraJavaOptions": f"-Duser.timezone={JVM_ZONE} -XX:+UseSerialGC",
}


@pytest.fixture(scope="session")
def spark(spark_jars: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pinpipe.engines.spark_session import spark_session

    settings = load_settings(workdir=tmp_path_factory.mktemp("spark"), **{"engine.spark_master": "local[2]"})
    session = spark_session(settings, {**SPARK_TEST_CONF, "spark.jars": spark_jars})
    jvm_zone = session.sparkContext._jvm.java.util.TimeZone.getDefault().getID()
    assert jvm_zone == JVM_ZONE
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"
    yield session
    session.stop()


def pinpipe(*args: str, workdir: Path, timeout: float = 600) -> str:
    return run_pinpipe(*args, workdir=workdir, timeout=timeout)


def settings_for(workdir: Path, tables: str = "tables", **overrides: Any) -> Settings:
    return load_settings(workdir=workdir, **{"engine.tables_url": file_url(workdir / tables), **overrides})


def synthetic_lake(workdir: Path, rows: int, per_file: int = 5_000) -> int:
    """Lake objects for ``rows`` synthetic posts, written directly as benchmarks/bench_batch.py does."""
    spec = importlib.util.spec_from_file_location("bench_batch", REPO / "benchmarks" / "bench_batch.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    total: int = module.generate(workdir / "lake", rows, per_file=per_file)
    return total


def send_streams(
    kafka_log: Any, prefix: str, values: Mapping[Any, list[Any]], bad: Mapping[Any, list[bytes]]
) -> None:
    """To a new two-partition topic ``streaming-<prefix>-<kind>`` per kind: its values as JSON keyed by
    ``ind``, then its ``bad`` raw records."""
    writer = kafka_log.writer()
    for kind in KINDS:
        topic = stream_name(prefix, kind)
        kafka_log.create_topic(topic, 2)
        records = [OutgoingRecord(json.dumps(v).encode(), str(v.get("ind")).encode()) for v in values[kind]]
        writer.append(topic, records + [OutgoingRecord(b) for b in bad[kind]])
    writer.flush()


def same_rows(a: pa.Table, b: pa.Table) -> bool:
    """Equal as multisets of rows with equal schemas (row order is not part of a cleaned table), values
    compared by their repr: -0.0 is not 0.0 (``==`` would say it is), NaN is NaN."""
    if a.schema != b.schema or a.num_rows != b.num_rows:
        return False
    key = lambda row: repr(sorted(row.items()))  # noqa: E731
    return sorted(map(key, a.to_pylist())) == sorted(map(key, b.to_pylist()))


def same_batch_on_both_engines(
    workdir: Path, options: BatchOptions, **overrides: Any
) -> tuple[BatchResult, BatchResult]:
    """The DuckDB and the Spark batch on ``workdir``'s lake, each writing its own tables, asserted to
    read, clean, quarantine (same records, same reasons) and output the same; returns both results."""
    duck_settings = settings_for(workdir, "tables-duckdb", **overrides)
    duck = get_engine("duckdb", duck_settings).run_batch(options)
    spark_settings = settings_for(workdir, "tables-spark", **overrides)
    result = get_engine("spark", spark_settings).run_batch(options)
    assert result.records_read == duck.records_read
    assert result.cleaned_rows == duck.cleaned_rows
    assert [q.__dict__ for q in result.quarantined] == [q.__dict__ for q in duck.quarantined]
    for name in OUTPUTS:
        assert result.outputs[name].equals(duck.outputs[name]), name
    for kind in KINDS:
        ours = read_table(batch_table(spark_settings, kind))
        assert same_rows(ours, read_table(batch_table(duck_settings, kind))), kind
    return duck, result
