"""The object store contract on the local directory and on S3 (moto server from infra/moto.sh), plus
what only S3 has: multipart uploads that stay atomic, pagination, Delta tables through delta-rs."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pinpipe import aws
from pinpipe.config import Settings
from pinpipe.errors import LakeError, ObjectNotFoundError
from pinpipe.lake.s3 import MIB, S3Store
from pinpipe.lake.store import ObjectStore, open_store
from pinpipe.locations import file_url
from tests.cloud import aws_env, new_bucket

__all__ = ["aws_env"]

StoreFactory = Callable[[], ObjectStore]


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "file":
        return open_store(file_url(tmp_path / "lake"))
    request.getfixturevalue("aws_env")
    return open_store(f"s3://{new_bucket()}/some/lake")


def test_put_get_replace_exists(store: ObjectStore) -> None:
    key = "topics/x.pin/partition=0/x.pin+0+0000000000.json"
    assert not store.exists(key)
    store.put(key, b'{"a":1}\n')
    assert store.exists(key) and store.get(key) == b'{"a":1}\n'
    store.put(key, b"")
    assert store.get(key) == b""
    store.put("unicode/caf\u00e9 \u2603.json", "d\u00e9j\u00e0 vu  ".encode())
    assert store.get("unicode/caf\u00e9 \u2603.json") == "d\u00e9j\u00e0 vu  ".encode()


def test_missing_object_and_bad_keys(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError):
        store.get("nope.json")
    for bad in ("/abs.json", "a/../b.json"):
        with pytest.raises(LakeError):
            store.put(bad, b"x")


def test_list_is_lexicographic_and_filtered_by_prefix(store: ObjectStore) -> None:
    keys = ["b/2.json", "a/10.json", "a/1.json", "a/2.json", "ab/x.json", "c.json"]
    for key in keys:
        store.put(key, key.encode())
    assert list(store.list()) == sorted(keys)
    assert list(store.list("a/")) == ["a/1.json", "a/10.json", "a/2.json"]
    assert list(store.list("a")) == ["a/1.json", "a/10.json", "a/2.json", "ab/x.json"]
    assert list(store.list("zzz")) == []


def test_s3_store_keeps_to_its_prefix_and_reads_the_aws_variables(aws_env: dict[str, str]) -> None:
    bucket = new_bucket()
    one, two = S3Store(f"s3://{bucket}/one"), S3Store(f"s3://{bucket}/two/")
    one.put("k.json", b"1")
    two.put("k.json", b"2")
    assert (one.get("k.json"), two.get("k.json")) == (b"1", b"2")
    assert list(one.list()) == ["k.json"]
    listed = aws.client("s3").list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == ["one/k.json", "two/k.json"]
    assert aws.s3_settings().endpoint_url == aws_env["AWS_ENDPOINT_URL_S3"]
    assert aws.s3_settings().region == "us-east-1"


def test_list_paginates_past_one_thousand_keys(aws_env: dict[str, str]) -> None:
    store = S3Store(f"s3://{new_bucket()}/lake")
    keys = [f"p/{i:05d}.json" for i in range(1050)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: store.put(k, b"x"), keys))
    assert list(store.list("p/")) == keys


def test_large_objects_go_up_in_parts_and_appear_whole(aws_env: dict[str, str]) -> None:
    store = S3Store(f"s3://{new_bucket()}/lake", multipart_threshold=5 * MIB, part_size=5 * MIB)
    data = bytes(range(256)) * (12 * MIB // 256) + b"tail"
    store.put("big.parquet", data)
    assert store.get("big.parquet") == data
    head = aws.client("s3").head_object(Bucket=store.bucket, Key="lake/big.parquet")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: 5 + 5 + 2 MiB


class _FailingParts:
    """A real S3 client whose second upload_part fails, as a dropped connection would."""

    def __init__(self, client: Any) -> None:
        self.client, self.parts = client, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def upload_part(self, **kwargs: Any) -> Any:
        self.parts += 1
        if self.parts == 2:
            raise ConnectionError("connection reset")
        return self.client.upload_part(**kwargs)


def test_a_failed_multipart_upload_leaves_nothing_visible(aws_env: dict[str, str]) -> None:
    client = aws.client("s3")
    bucket = new_bucket()
    store = S3Store(
        f"s3://{bucket}/lake", client=_FailingParts(client), multipart_threshold=5 * MIB, part_size=5 * MIB
    )
    store.put("big.json", b"old")
    with pytest.raises(LakeError, match="connection reset"):
        store.put("big.json", b"n" * (11 * MIB))
    assert store.get("big.json") == b"old"
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_missing_bucket_is_a_clear_lake_error(aws_env: dict[str, str]) -> None:
    store = S3Store("s3://pinpipe-no-such-bucket-x1/lake")
    with pytest.raises(LakeError, match="NoSuchBucket"):
        store.put("k.json", b"x")


def test_delta_tables_on_s3_batch_and_stream_modules(aws_env: dict[str, str]) -> None:
    from pinpipe import delta
    from pinpipe.delta import read_snapshot_if_exists, read_table, replace_table
    from pinpipe.streaming.offsets import committed_offsets, transactions

    base = f"s3://{new_bucket()}/tables"
    replace_table(f"{base}/batch/out", pa.table({"a": [1, 2]}))
    replace_table(f"{base}/batch/out", pa.table({"a": [3]}))  # reruns replace
    assert read_table(f"{base}/batch/out").to_pylist() == [{"a": 3}]
    snap = read_snapshot_if_exists(f"{base}/batch/out")
    assert snap is not None and snap.version == 1 and snap.table.to_pylist() == [{"a": 3}]

    url = f"{base}/stream/x_pin_table"
    tp = ("streaming-x-pin", 0)
    assert committed_offsets(url, [tp]) == {tp: 0}
    delta.append(url, pa.table({"v": ["a", "b"]}), transactions({tp: 2}))
    delta.append(url, pa.table({"v": ["c"]}), transactions({tp: 3}))
    assert committed_offsets(url, [tp]) == {tp: 3}
    table = delta.read_table_if_exists(url)
    assert table is not None and sorted(table.column("v").to_pylist()) == ["a", "b", "c"]


def test_tables_go_beside_an_s3_lake_unless_configured() -> None:
    def tables(**lake: Any) -> str:
        return Settings(lake=lake, engine={}).tables_url  # type: ignore[arg-type]

    assert tables(url="s3://b/lake") == "s3://b/tables"
    assert tables(url="s3://b/a/lake/") == "s3://b/a/tables"
    assert tables(url="s3://b") == "s3://b/tables"
    assert tables(url="file:///x/lake").startswith("file://")
    explicit = Settings(lake={"url": "s3://b/lake"}, engine={"tables_url": "file:///t"})  # type: ignore[arg-type]
    assert explicit.tables_url == "file:///t"
