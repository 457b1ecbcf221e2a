"""Incremental batch runs on an S3 lake (moto server): objects rewritten, grown or deleted after they were
cleaned are reported (size and ETag from the listing); one rewritten with the same bytes is no change."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinpipe.config import load_settings
from pinpipe.delta import read_table
from pinpipe.engines import run_batch
from pinpipe.lake.store import open_store
from pinpipe.schema import topic_name
from pinpipe.tables import batch_table
from pinpipe.transform.queries import BatchOptions
from tests.cloud import aws_env, new_bucket
from tests.unit.test_batch_chunks import user
from tests.unit.test_batch_run import lines

__all__ = ["aws_env"]


@pytest.mark.s3
@pytest.mark.parametrize("edit", ["same bytes", "rewrite", "grow", "delete"])
def test_objects_changed_on_s3_after_cleaning_are_reported(
    aws_env: dict[str, str], workdir: Path, edit: str
) -> None:
    bucket = new_bucket()
    settings = load_settings(workdir=workdir, **{"lake.url": f"s3://{bucket}/lake"})
    store = open_store(settings.lake_url)
    topic = topic_name(settings.prefix, "user")
    key = f"topics/{topic}/partition=0/{topic}+0+0000000000.json"
    store.put(key, lines(user(1, 20)))
    first = run_batch(settings, BatchOptions())
    assert first.objects_read["user"] == 1 and first.changed == {}

    if edit == "same bytes":  # a sink rerun writes an object again byte for byte
        store.put(key, lines(user(1, 20)))
    elif edit == "rewrite":  # the same size, other bytes: only the ETag tells
        store.put(key, lines(user(2, 20)))
    elif edit == "grow":
        store.put(key, lines(user(1, 20), user(2, 30)))
    else:
        from pinpipe import aws

        aws.client("s3").delete_object(Bucket=bucket, Key=f"lake/{key}")
    store.put(key.replace("+0000000000", "+0000001000"), lines(user(3, 40)))
    result = run_batch(settings, BatchOptions())
    assert result.changed == ({} if edit == "same bytes" else {"user": [key]})
    assert result.objects_read["user"] == 1  # the new object only: a changed one is not cleaned again
    assert sorted(read_table(batch_table(settings, "user")).column("ind").to_pylist()) == [1, 3]


@pytest.mark.s3
def test_a_new_object_on_s3_updates_the_outputs_aggregates_kept_on_s3(
    aws_env: dict[str, str], workdir: Path
) -> None:
    """Lake and tables on S3 (the tables beside the lake): the second run reads the kept aggregates and
    the old rows of the new inds from S3, and gives the outputs of one run over both objects."""
    from tests.unit.test_batch_incremental import lake_objects, put

    every = lake_objects(
        [[("a", 1, 0, 2), (None, 2, 1, 0)], [("b", 3, 2, 1), ("a", 1, 1, 3), ("c", 2, 0, 2)]]
    )
    settings = load_settings(workdir=workdir, **{"lake.url": f"s3://{new_bucket()}/lake"})
    local = load_settings(workdir=workdir / "local")
    store = open_store(settings.lake_url)

    def upload(objects: list[tuple[str, str, bytes]]) -> None:
        for kind, name, data in objects:
            topic = topic_name(settings.prefix, kind)  # type: ignore[arg-type]
            store.put(f"topics/{topic}/{name.format(topic=topic)}", data)

    for kind, name, data in every:
        put(local, kind, name, data)
    upload(every[:3])
    assert not run_batch(settings, BatchOptions()).outputs_incremental
    upload(every[3:])
    second = run_batch(settings, BatchOptions())
    assert second.outputs_incremental and second.objects_read == {"pin": 1, "geo": 1, "user": 1}
    expected = run_batch(local, BatchOptions()).outputs
    assert {n: t.to_pylist() for n, t in second.outputs.items()} == {
        n: t.to_pylist() for n, t in expected.items()
    }
