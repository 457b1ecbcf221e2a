"""Chunked cleaning with the lake and the Delta tables on S3 (moto server): the parts are written locally,
uploaded through delta-rs, then removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinpipe.config import load_settings
from pinpipe.lake.store import open_store
from pinpipe.transform.queries import BatchOptions
from tests.cloud import aws_env, new_bucket
from tests.unit.test_batch_chunks import EVERY_OBJECT, ONE_PASS, geo, pin, run, user
from tests.unit.test_batch_run import lines, write_lake

__all__ = ["aws_env"]


@pytest.mark.s3
def test_chunks_on_an_s3_lake_and_s3_tables_give_the_one_pass_tables(
    aws_env: dict[str, str], workdir: Path
) -> None:
    settings = load_settings(workdir=workdir, **{"lake.url": f"s3://{new_bucket()}/lake"})
    store = open_store(settings.lake_url)
    local = load_settings(workdir=workdir / "local")
    for kind, objects in {
        "pin": [
            lines(pin(1, "a", "first"), pin(2, None, "x")),
            lines(pin(3, "a", "later"), pin(2, None, "x")),
        ],
        "geo": [lines(geo(1, "X")), lines(geo(1, "X"), geo(2, "Y"))],
        "user": [lines(user(1, 20)), lines(user(1, 20))],
    }.items():
        for key in write_lake(local, kind, objects):  # the same keys, then copied to the bucket
            store.put(key, (local.workdir / "lake" / key).read_bytes())
    chunked = run(settings, EVERY_OBJECT, BatchOptions())
    assert chunked == run(settings, ONE_PASS, BatchOptions())
    assert [row[2] for row in chunked["pin"]] == ["first", "x"]
    assert list((workdir / "tmp").glob("cleaned-*/*.parquet")) == []
