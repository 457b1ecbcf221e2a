"""``pinpipe sink run`` and ``run_sink`` on the embedded log, in-process."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pyarrow.parquet as pq
from click.testing import CliRunner

from pinpipe.cli import cli
from pinpipe.config import Settings
from pinpipe.lake.formats import parse_key
from pinpipe.lake.sink import GROUP, run_sink
from pinpipe.lake.store import FileStore
from pinpipe.log import open_log
from pinpipe.log.base import OutgoingRecord
from pinpipe.schema import topic_names

PER_TOPIC = 40


def fill(settings: Settings) -> None:
    log = open_log(settings.log_url)
    writer = log.writer()
    for kind, topic in topic_names(settings.prefix).items():
        log.create_topic(topic, 3)
        writer.append(topic, [OutgoingRecord(orjson.dumps({"ind": i, "k": kind})) for i in range(PER_TOPIC)])
    log.close()


def test_sink_run_until_idle_prints_a_summary(settings: Settings, workdir: Path) -> None:
    fill(settings)
    args = ["sink", "run", "--workdir", str(workdir), "--until-idle", "--flush-size", "7", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "total" in result.output and f"{3 * PER_TOPIC}" in result.output
    store = FileStore(settings.lake_url)
    keys = list(store.list())
    assert all(parse_key(k) is not None for k in keys)
    assert sum(store.get(k).count(b"\n") for k in keys) == 3 * PER_TOPIC
    log = open_log(settings.log_url)
    for topic in topic_names(settings.prefix).values():
        assert log.committed(GROUP, topic) == log.end_offsets(topic)
    log.close()
    again = CliRunner().invoke(cli, args)  # caught up: nothing new, nothing rewritten
    assert again.exit_code == 0 and list(store.list()) == keys


def test_sink_run_rejects_bad_flags(workdir: Path) -> None:
    result = CliRunner().invoke(cli, ["sink", "run", "--workdir", str(workdir), "--format", "csv"])
    assert result.exit_code == 2 and "csv" in result.output
    result = CliRunner().invoke(cli, ["sink", "run", "--workdir", str(workdir), "--flush-size", "0"])
    assert result.exit_code == 2


def test_run_sink_parquet_from_settings(settings: Settings) -> None:
    fill(settings)
    summary = run_sink(settings, until_idle=True, flush_size=100, format="parquet")
    assert summary.records == 3 * PER_TOPIC and not summary.stopped
    assert set(summary.topics) == set(topic_names(settings.prefix).values())
    store = FileStore(settings.lake_url)
    rows = [row for k in store.list() for row in pq.read_table(io.BytesIO(store.get(k))).to_pylist()]
    assert sorted((r["k"], r["ind"]) for r in rows) == sorted(
        (k, i) for k in ("pin", "geo", "user") for i in range(PER_TOPIC)
    )
    assert all(k.endswith(".parquet") for k in store.list())
