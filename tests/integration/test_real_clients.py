"""Third-party clients, unchanged, against ``pinpipe api serve`` (embedded log, an admin key configured):

- boto3's ``kinesis`` client with ``endpoint_url`` (the Kinesis wire protocol, the API key as access key
  id): create, list, describe and delete a stream, ``put_record`` and ``put_records`` of 500 records per
  stream, and the AWS CLI's ``aws kinesis put-record``; ``pinpipe stream run --until-idle`` then puts
  every record in the Delta tables.
- Confluent's Node.js client (npm ``kafka-rest``, installed by infra/node-clients.sh, run with node):
  topics, partitions, brokers, and a binary produce of geo records that land in the log and, after
  ``pinpipe sink run --until-idle``, in the lake.
- curl with the calls of Confluent's REST Proxy docs: v2 binary, v2 partition produce, v3 records and
  records:batch, answering as documented.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest

from pinpipe.delta import read_table
from pinpipe.lake.store import open_store
from pinpipe.log import open_log
from pinpipe.schema import KINDS, stream_name, topic_name
from pinpipe.tables import stream_table
from tests.e2e.pipeline_cli import ApiProcess, clean_env, location_flags, pinpipe, settings_for
from tests.unit.samples import GEO_RECORD, PIN_RECORD

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO / "tests" / "clients"
ADMIN_KEY = "real-clients-admin-key-0001"
PREFIX = "0a1b2c3d4e5f"
PER_STREAM = 500
GEO = topic_name(PREFIX, "geo")


def record(kind: str, ind: int) -> dict[str, Any]:
    if kind == "pin":
        return {**PIN_RECORD, "index": ind, "unique_id": f"u-{ind}"}
    if kind == "geo":
        return {**GEO_RECORD, "ind": ind}
    return {"ind": ind, "first_name": "Ada", "last_name": "Lovelace", "age": 36, "date_joined": "2016-01-01"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiProcess, list[str], dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("clients")
    env = {**clean_env(tmp), "PINPIPE_API__ADMIN_KEYS": json.dumps([ADMIN_KEY])}
    flags = location_flags(tmp / "work")
    with ApiProcess(flags, env, tmp / "api.log") as server:
        yield server, flags, env


def test_boto3_and_aws_cli_put_records_that_the_stream_job_stores(api) -> None:
    server, flags, env = api
    kinesis = boto3.client(
        "kinesis",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=ADMIN_KEY,  # the API key as access key id; the signature is not checked
        aws_secret_access_key="unused",
    )
    extra = f"streaming-{PREFIX}-extra"
    kinesis.create_stream(StreamName=extra, ShardCount=2)
    assert extra in kinesis.list_streams()["StreamNames"]
    description = kinesis.describe_stream(StreamName=extra)["StreamDescription"]
    assert [s["ShardId"] for s in description["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]
    assert (
        kinesis.describe_stream_summary(StreamName=extra)["StreamDescriptionSummary"]["OpenShardCount"] == 2
    )
    assert len(kinesis.list_shards(StreamName=extra)["Shards"]) == 2
    with pytest.raises(kinesis.exceptions.ResourceInUseException):
        kinesis.create_stream(StreamName=extra, ShardCount=1)
    kinesis.delete_stream(StreamName=extra)
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.describe_stream(StreamName=extra)

    for kind in KINDS:
        stream = stream_name(PREFIX, kind)
        entries = [
            {"Data": orjson.dumps(record(kind, i)), "PartitionKey": str(i)} for i in range(1, PER_STREAM + 1)
        ]
        answer = kinesis.put_records(StreamName=stream, Records=entries)
        assert answer["FailedRecordCount"] == 0 and len(answer["Records"]) == PER_STREAM
        one = kinesis.put_record(StreamName=stream, Data=orjson.dumps(record(kind, 0)), PartitionKey="0")
        assert one["ShardId"].startswith("shardId-") and one["SequenceNumber"].isdigit()
    refused = kinesis.put_records(
        StreamName=stream_name(PREFIX, "geo"), Records=[{"Data": b'{"foo": 1}', "PartitionKey": "k"}]
    )
    assert refused["FailedRecordCount"] == 1 and "ind" in refused["Records"][0]["ErrorMessage"]

    aws = Path(sys.executable).with_name("aws")
    cli_env = {
        **env,
        "AWS_ACCESS_KEY_ID": ADMIN_KEY,
        "AWS_SECRET_ACCESS_KEY": "unused",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    last = PER_STREAM + 1
    for kind in KINDS:
        done = subprocess.run(
            [str(aws), "kinesis", "put-record", "--endpoint-url", server.url,
             "--stream-name", stream_name(PREFIX, kind), "--partition-key", "cli",
             "--data", orjson.dumps(record(kind, last)).decode()],
            env=cli_env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["SequenceNumber"].isdigit()

    pinpipe("stream", "run", *flags, "--until-idle", "--quiet", env=env)
    settings = settings_for(Path(flags[1]))
    for kind in KINDS:
        stored = sorted(read_table(stream_table(settings, kind)).column("ind").to_pylist())
        assert stored == list(range(last + 1)), kind


def test_confluent_node_client_lists_and_produces_binary(api) -> None:
    server, flags, env = api
    node = shutil.which("node")
    assert node, "node is needed (infra/node-clients.sh installs it)"
    assert (CLIENTS / "node_modules" / "kafka-rest").is_dir(), "run: bash infra/node-clients.sh install"
    records = [record("geo", 10_000 + i) for i in range(20)]
    lines = "\n".join(orjson.dumps(r).decode() for r in records)
    done = subprocess.run(
        [node, str(CLIENTS / "kafka_rest_client.js"), server.url, GEO, lines],
        cwd=CLIENTS, env={**env, "PINPIPE_API_KEY": ADMIN_KEY},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert GEO in summary["topics"] and summary["brokers"] == [0] and summary["partitions"] == 3
    assert all(o["error_code"] is None and o["offset"] is not None for o in summary["offsets"])
    assert len(summary["offsets"]) == len(records)

    settings = settings_for(Path(flags[1]))
    log = open_log(settings.log_url)
    reader = log.reader("real-clients-check", [GEO])
    in_log = [orjson.loads(r.value) for r in reader.poll(10_000, 2.0)]
    reader.close()
    log.close()
    assert all(r in in_log for r in records)

    pinpipe("sink", "run", *flags, "--until-idle", "-q", env=env)
    store = open_store(settings.lake_url)
    in_lake = [
        orjson.loads(line) for key in store.list(f"topics/{GEO}/") for line in store.get(key).splitlines()
    ]
    assert all(r in in_lake for r in records)


def curl(*args: str) -> tuple[int, Any]:
    """``curl ARGS``: (HTTP status, JSON body)."""
    done = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_curl_calls_of_confluent_docs(api) -> None:
    server, flags, _ = api
    auth = ["-u", f"user:{ADMIN_KEY}"]
    geo = base64.b64encode(orjson.dumps(record("geo", 20_000))).decode()
    key = base64.b64encode(b"user-1").decode()
    plain = base64.b64encode(b"plain").decode()

    status, body = curl(
        "-X", "POST", *auth, "-H", "Content-Type: application/vnd.kafka.binary.v2+json",
        "-H", "Accept: application/vnd.kafka.v2+json",
        "--data", json.dumps({"records": [{"key": key, "value": geo}, {"value": plain}]}),
        f"{server.url}/topics/{GEO}",
    )  # fmt: skip
    assert status == 200 and body["key_schema_id"] is None and body["value_schema_id"] is None
    assert body["offsets"][0]["error_code"] is None and isinstance(body["offsets"][0]["offset"], int)
    assert body["offsets"][1]["error_code"] == 42206  # not JSON: refused on a geo topic, said per record

    status, body = curl(
        "-X", "POST", *auth, "-H", "Content-Type: application/vnd.kafka.json.v2+json",
        "--data", json.dumps({"records": [{"value": record("geo", 20_001)}]}),
        f"{server.url}/topics/{GEO}/partitions/1",
    )  # fmt: skip
    assert status == 200 and body["offsets"][0]["partition"] == 1

    status, clusters = curl(*auth, f"{server.url}/v3/clusters")
    assert status == 200 and clusters["kind"] == "KafkaClusterList"
    cluster = clusters["data"][0]["cluster_id"]
    records_url = f"{server.url}/v3/clusters/{cluster}/topics/{GEO}/records"
    status, body = curl(
        "-X", "POST", *auth, "-H", "Content-Type: application/json",
        "--data", json.dumps({"partition_id": 2, "headers": [{"name": "trace", "value": key}],
                              "key": {"type": "STRING", "data": "user-1"},
                              "value": {"type": "JSON", "data": record("geo", 20_002)},
                              "timestamp": "2024-01-02T03:04:05Z"}),
        records_url,
    )  # fmt: skip
    assert status == 200, body
    assert body["error_code"] == 200 and body["cluster_id"] == cluster and body["topic_name"] == GEO
    assert body["partition_id"] == 2 and body["timestamp"] == "2024-01-02T03:04:05.000Z"
    assert body["key"] == {"type": "STRING", "size": 6} and body["value"]["type"] == "JSON"

    entries = [
        {"id": "a", "value": {"type": "BINARY", "data": geo}},
        {"id": "b", "value": {"type": "JSON", "data": {"country": "Albania"}}},
    ]
    status, body = curl(
        "-X", "POST", *auth, "-H", "Content-Type: application/json",
        "--data", json.dumps({"entries": entries}), f"{records_url}:batch",
    )  # fmt: skip
    assert status == 207
    assert [s["id"] for s in body["successes"]] == ["a"] and body["successes"][0]["cluster_id"] == cluster
    assert [(f["id"], f["error_code"]) for f in body["failures"]] == [("b", 42206)]

    status, body = curl("-X", "POST", "-H", "Content-Type: application/json", "--data", "{}", records_url)
    assert (status, body["error_code"]) == (401, 40101)

    settings = settings_for(Path(flags[1]))
    log = open_log(settings.log_url)
    reader = log.reader("real-clients-headers", [GEO])
    stored = [r for r in reader.poll(10_000, 2.0) if orjson.loads(r.value)["ind"] == 20_002]
    reader.close()
    log.close()
    assert [r.headers for r in stored] == [(("trace", b"user-1"),)]
    assert [r.timestamp for r in stored] == [1704164645.0]  # the record's own timestamp
