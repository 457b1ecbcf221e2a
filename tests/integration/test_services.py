"""Each infra/<service>.sh starts its service on 127.0.0.1 and the service answers a real request."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.services import InfraService

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.s3
@pytest.mark.kinesis
def test_moto_serves_s3_and_kinesis(moto_endpoint: str) -> None:
    import boto3

    assert urlparse(moto_endpoint).hostname == "127.0.0.1"
    auth = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, **auth)
    bucket = f"svc-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/b.json", Body=b'{"x": 1}')
    assert s3.get_object(Bucket=bucket, Key="a/b.json")["Body"].read() == b'{"x": 1}'
    kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint, **auth)
    stream = f"svc-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    # describe, not list_streams: the session's moto server holds many streams by now (list pages them)
    summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert summary["StreamName"] == stream and summary["OpenShardCount"] == 2


@pytest.mark.mariadb
def test_mariadb_answers_select_1(mariadb_url: str) -> None:
    import pymysql

    url = urlparse(mariadb_url)
    assert url.scheme == "mysql+pymysql" and url.hostname == "127.0.0.1" and url.path == "/pinpipe"
    conn = pymysql.connect(
        host=url.hostname, port=url.port, user=url.username, password=url.password, database="pinpipe"
    )
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    conn.close()


@pytest.mark.postgres
def test_postgres_answers_select_1(postgres_url: str) -> None:
    import psycopg

    url = urlparse(postgres_url)
    assert url.scheme == "postgresql+psycopg" and url.hostname == "127.0.0.1"
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.spark
def test_spark_jars_exist_and_leave_out_what_pyspark_ships(spark_jars: str) -> None:
    import pyspark

    jars = [Path(j) for j in spark_jars.split(",")]
    names = {j.name for j in jars}
    assert all(j.is_file() for j in jars)
    assert any(n.startswith("spark-sql-kafka-0-10_2.13-4.2.0") for n in names)
    assert any(n.startswith("delta-spark_2.13-") for n in names)
    assert any(n.startswith("hadoop-aws-") for n in names)
    shipped = {p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    assert not names & shipped
    assert not any(n.startswith(("scala-library-", "hadoop-client-api-")) for n in names)


@pytest.mark.browser
def test_chromium_is_installed(chromium_path: str) -> None:
    done = subprocess.run([chromium_path, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Chromium" in done.stdout


@pytest.mark.airflow
def test_airflow_environment_imports_airflow(airflow_python: str) -> None:
    done = subprocess.run(
        [airflow_python, "-c", "import airflow; print(airflow.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith("3.")


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited server waits for its reaper, which is not us)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_start_is_idempotent_and_stop_ends_the_process(tmp_path: Path) -> None:
    """The contract every script keeps, shown on the quickest one (moto)."""
    service = InfraService("moto", tmp_path)
    first = service.start()
    try:
        assert service.start() == first  # already running: the same endpoint, no second server
        pid = int((tmp_path / "moto" / "moto.pid").read_text())
        assert running(pid)
    finally:
        service.stop()
    assert not running(pid)
    status = subprocess.run(
        ["bash", str(REPO / "infra" / "moto.sh"), "status"],
        env={**os.environ, "PINPIPE_INFRA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert status.returncode == 3 and "stopped" in status.stdout
