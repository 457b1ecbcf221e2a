"""Incremental batch runs on Spark, and either engine continuing the tables the other built: a lake cleaned in
increments, each run by a drawn engine, gives the tables, quarantine and ten outputs of one full run.

The full run is DuckDB's (Spark's full runs equal it: ``test_spark_batch.py``); the sample is smaller than
``tests/unit/test_batch_incremental.py``'s, as each Spark run costs seconds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pinpipe.config import load_settings
from pinpipe.engines import run_batch
from pinpipe.schema import KINDS
from pinpipe.transform.queries import BatchOptions
from tests.integration.spark_support import spark
from tests.unit.test_batch_incremental import SWITCHES, lake_objects, put, records, snapshot

__all__ = ["spark"]  # the session fixture, used by name below

pytestmark = [pytest.mark.spark, pytest.mark.timeout(900)]


@hsettings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(records, min_size=1, max_size=5),
    st.lists(st.integers(0, 5), max_size=2),
    st.sampled_from(SWITCHES),
    st.integers(1, 2),
    st.lists(st.sampled_from(["duckdb", "spark"]), min_size=3, max_size=3),
)
@example(  # DuckDB's history continued by Spark, then Spark's by DuckDB; duplicates across increments
    [[("a", 1, 0), (None, 2, 1)], [("a", 1, 1), ("b", 3, 2)], [(None, 2, 1), ("c", 1, 0)]],
    [1, 2],
    BatchOptions(),
    1,
    ["duckdb", "spark", "duckdb"],
)
def test_increments_by_either_engine_equal_one_full_run(
    spark: Any, objects: list, cuts: list[int], options: BatchOptions, partitions: int, engines: list[str]
) -> None:
    every = lake_objects(objects, partitions)
    bounds = sorted({min(c, len(objects)) for c in cuts} | {len(objects)})  # 1-3 increments
    engines = engines[: len(bounds)]
    if "spark" not in engines:
        engines[-1] = "spark"
    with tempfile.TemporaryDirectory(prefix="pinpipe-incr-") as a, tempfile.TemporaryDirectory() as b:
        full = load_settings(workdir=Path(a))
        for kind, name, data in every:
            put(full, kind, name, data)
        expected = snapshot(full, run_batch(full, options).outputs)
        written = 0
        for bound, engine in zip(bounds, engines, strict=True):
            step = load_settings(workdir=Path(b), **{"engine.name": engine})
            for kind, name, data in every[written * 3 : bound * 3]:
                put(step, kind, name, data)
            new = bound - written
            written = bound
            result = run_batch(step, options)
            for kind in KINDS:  # pin may be rebuilt: a new record preceding a differing kept one
                assert result.objects_read[kind] == (written if kind in result.rebuilt else new), kind
        assert snapshot(step, result.outputs) == expected
