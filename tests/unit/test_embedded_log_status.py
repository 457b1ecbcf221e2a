"""``pinpipe status``: the JSON shape over the embedded log, topics and streams, groups and lag."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pinpipe.cli import cli
from pinpipe.config import Settings
from pinpipe.locations import embedded_url
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.log.memory import MemoryLog
from pinpipe.schema import stream_name, topic_name
from pinpipe.status import collect_status


def test_status_json_shape_for_topics_streams_and_groups(settings: Settings) -> None:
    topic, stream = topic_name(settings.prefix, "pin"), stream_name(settings.prefix, "pin")
    log = EmbeddedLog(settings.log_url)
    log.create_topic(topic, 3)
    log.create_topic(stream, 2)
    log.writer().append(topic, [OutgoingRecord(b"{}", partition=i % 3) for i in range(10)])
    log.reader("pinpipe-lake-sink", [topic]).commit({(topic, 0): 3, (topic, 1): 1})
    log.close()

    result = CliRunner().invoke(cli, ["status", "--workdir", str(settings.workdir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "topics": {
            topic: {
                "records": 10,
                "partitions": {"0": {"end_offset": 4}, "1": {"end_offset": 3}, "2": {"end_offset": 3}},
            },
            stream: {"records": 0, "partitions": {"0": {"end_offset": 0}, "1": {"end_offset": 0}}},
        },
        "groups": {
            "pinpipe-lake-sink": {
                topic: {
                    "0": {"committed": 3, "lag": 1},
                    "1": {"committed": 1, "lag": 2},
                    "2": {"committed": 0, "lag": 3},
                }
            }
        },
    }

    table = CliRunner().invoke(cli, ["status", "--workdir", str(settings.workdir)])
    assert table.exit_code == 0, table.output
    assert topic in table.output and stream in table.output and "pinpipe-lake-sink" in table.output


def test_records_count_what_retention_kept_and_logs_merge(settings: Settings) -> None:
    log = EmbeddedLog(embedded_url(settings.workdir / "small"), retention_bytes=5, retention_ms=None)
    log.create_topic("a", 1)
    log.writer().append("a", [OutgoingRecord(b"x") for _ in range(20)])
    log.reader("g", ["a"]).commit({("a", 0): 2})
    log.enforce_retention()
    streams = MemoryLog(auto_create=False)
    streams.create_topic("b", 1)
    streams.writer().append("b", [OutgoingRecord(b"y")])
    status = collect_status([log, streams])
    log.close()
    assert status["topics"]["a"] == {"records": 5, "partitions": {"0": {"end_offset": 20}}}
    assert status["topics"]["b"] == {"records": 1, "partitions": {"0": {"end_offset": 1}}}
    assert status["groups"] == {"g": {"a": {"0": {"committed": 2, "lag": 5}}}}


def test_status_of_an_empty_workdir(settings: Settings) -> None:
    settings.workdir.mkdir(parents=True)
    result = CliRunner().invoke(cli, ["status", "--workdir", str(settings.workdir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"topics": {}, "groups": {}}
