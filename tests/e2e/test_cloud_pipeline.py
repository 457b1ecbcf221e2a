"""The whole pipeline on real services: the source on MariaDB, the lake and the Delta tables on S3, the
streams on Kinesis (moto server), the topics on the embedded log, through ``pinpipe demo``. It must give
the same ten outputs and the same stream Delta rows as the all-embedded run on the same input."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from pinpipe.cli import cli
from pinpipe.config import Settings
from pinpipe.delta import read_table_if_exists
from pinpipe.lake.store import open_store
from pinpipe.schema import KINDS
from pinpipe.tables import stream_table
from tests.cloud import aws_env, new_bucket

__all__ = ["aws_env"]
pytestmark = [pytest.mark.mariadb, pytest.mark.s3, pytest.mark.kinesis]

ITERATIONS = 500  # the CLI run with all 2,524 oracle iterations is in docs/cloud.md


def demo(workdir: Path, export: Path, prefix: str, aicore: Path, *cloud: str) -> str:
    args = [
        "demo",
        "--workdir",
        str(workdir),
        "--prefix",
        prefix,
        "--load-dir",
        str(aicore),
        "--seed",
        "100",
        "--iterations",
        str(ITERATIONS),
        "--no-sleep",
        "--export",
        str(export),
        *cloud,
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


def stream_rows(settings: Settings) -> dict[str, list[dict[str, object]]]:
    """Each stream table's rows in (partition, offset) order, without the arrival time."""
    rows: dict[str, list[dict[str, object]]] = {}
    for kind in KINDS:
        table = read_table_if_exists(stream_table(settings, kind))
        assert table is not None, kind
        table = table.drop_columns(["_arrival"]).sort_by(
            [("_partition", "ascending"), ("_offset", "ascending")]
        )
        rows[kind] = table.to_pylist()
    return rows


def test_mariadb_s3_kinesis_pipeline_equals_the_embedded_one(
    tmp_path: Path, aicore: Path, mariadb_url: str, aws_env: dict[str, str]
) -> None:
    prefix = uuid.uuid4().hex[:12]  # fresh streams on the session's moto server
    bucket = new_bucket()
    demo(tmp_path / "local", tmp_path / "local-csv", prefix, aicore)
    output = demo(
        tmp_path / "cloud",
        tmp_path / "cloud-csv",
        prefix,
        aicore,
        "--db",
        mariadb_url,
        "--lake",
        f"s3://{bucket}/lake",
        "--stream-log",
        "kinesis://",
    )
    assert "kinesis://?state=" in output and f"s3://{bucket}/tables/batch" in output
    assert mariadb_url.split("@")[0].split(":")[-1] not in output  # the DB password is not printed

    status = CliRunner().invoke(
        cli,
        [
            "status",
            "--workdir",
            str(tmp_path / "cloud"),
            "--prefix",
            prefix,
            "--stream-log",
            "kinesis://",
            "--json",
        ],
    )
    assert status.exit_code == 0, status.output
    groups = json.loads(status.stdout)["groups"]
    stream_lag = groups["pinpipe-stream"][f"streaming-{prefix}-pin"]
    assert len(stream_lag) == 3 and all(p["lag"] == 0 for p in stream_lag.values())
    assert sum(p["committed"] for p in stream_lag.values()) == ITERATIONS

    local_csv = sorted((tmp_path / "local-csv").glob("*.csv"))
    assert len(local_csv) == 10
    for path in local_csv:
        assert (tmp_path / "cloud-csv" / path.name).read_bytes() == path.read_bytes(), path.name

    local = Settings(workdir=tmp_path / "local", prefix=prefix)
    cloud = Settings(workdir=tmp_path / "cloud", prefix=prefix, lake={"url": f"s3://{bucket}/lake"})  # type: ignore[arg-type]
    assert cloud.tables_url == f"s3://{bucket}/tables"
    local_rows, cloud_rows = stream_rows(local), stream_rows(cloud)
    for kind in KINDS:
        assert len(local_rows[kind]) > 0.9 * ITERATIONS, kind  # a few pins are missing from the source
        assert cloud_rows[kind] == local_rows[kind], kind

    # the same records in the lake; not the same files: keyless REST-proxy records are spread round-robin,
    # and the emulator sends an iteration's three records concurrently, so partitions may differ per run
    local_lake, cloud_lake = open_store(local.lake_url), open_store(f"s3://{bucket}/lake")
    for kind in KINDS:
        base = f"topics/{prefix}.{kind}/"
        lines = [
            sorted(ln for k in store.list(base) for ln in store.get(k).splitlines())
            for store in (local_lake, cloud_lake)
        ]
        assert len(lines[0]) == ITERATIONS and lines[1] == lines[0], kind
