from __future__ import annotations

import pytest

from pinpipe.config import load_settings
from pinpipe.errors import ConfigError
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.memory import MemoryLog
from pinpipe.log.partitioner import murmur2, partition_for_key
from pinpipe.schema import stream_names, topic_names, validate_record


def test_murmur2_matches_kafka_test_vectors() -> None:
    # Vectors from Kafka's UtilsTest.testMurmur2
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"") == 275646681
    assert 0 <= partition_for_key(b"abc", 3) < 3


def test_settings_priority_flags_over_env_over_defaults(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINPIPE_LOG__PARTITIONS", "5")
    assert load_settings().log.partitions == 5
    assert load_settings(**{"log.partitions": 7}).log.partitions == 7
    assert settings.log_url.startswith("embedded://")


def test_settings_toml_below_env(tmp_path, monkeypatch: pytest.MonkeyPatch, settings) -> None:
    toml = tmp_path / "pinpipe.toml"
    toml.write_text('prefix = "aaaaaaaaaaaa"\n[log]\npartitions = 4\n')
    monkeypatch.setenv("PINPIPE_CONFIG", str(toml))
    assert load_settings().log.partitions == 4
    monkeypatch.setenv("PINPIPE_LOG__PARTITIONS", "6")
    assert load_settings().log.partitions == 6
    assert load_settings().prefix == "aaaaaaaaaaaa"


def test_bad_setting_is_config_error(settings) -> None:
    with pytest.raises(ConfigError, match=r"engine\.name"):
        load_settings(**{"engine.name": "oracle"})


def test_names() -> None:
    assert topic_names("abc")["pin"] == "abc.pin"
    assert stream_names("abc")["geo"] == "streaming-abc-geo"


def test_validate_record_types() -> None:
    assert (
        validate_record("geo", {"ind": 1, "timestamp": "2020-01-01 00:00:00", "latitude": 1, "extra": 1})
        == []
    )
    problems = validate_record("user", {"ind": "x", "age": 3.5})
    assert len(problems) == 2
    assert validate_record("pin", [1]) != []


def test_memory_log_idempotency_and_groups() -> None:
    log = MemoryLog(partitions=2)
    w = log.writer()
    first = w.append("t", [OutgoingRecord(b"a", key=b"k", idempotency_key="id1")])
    again = w.append("t", [OutgoingRecord(b"a", key=b"k", idempotency_key="id1")])
    assert first == again
    assert sum(log.end_offsets("t").values()) == 1
    r = log.reader("g", ["t"])
    got = r.poll(10, 0.1)
    assert [x.value for x in got] == [b"a"]
    r.commit({("t", got[0].partition): got[0].offset + 1})
    assert log.committed("g", "t") == {got[0].partition: 1}


def test_open_settings_log_passes_partitions_and_kafka_settings(
    monkeypatch: pytest.MonkeyPatch, settings
) -> None:
    import pinpipe.log as log_module

    seen: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(log_module, "open_log", lambda url, **options: seen.append((url, options)))
    configured = load_settings(
        **{
            "log.url": "kafka://127.0.0.1:9092",
            "log.partitions": 6,
            "log.kafka": {"security.protocol": "SASL_SSL"},
        }
    )
    log_module.open_settings_log(configured)
    log_module.open_settings_log(configured, "embedded:///tmp/x")
    assert seen == [
        (
            "kafka://127.0.0.1:9092",
            {
                "partitions": 6,
                "kafka": {"security.protocol": "SASL_SSL"},
                "replication_factor": 0,  # 0: derived from the cluster's brokers
                "min_insync_replicas": 0,
            },
        ),
        ("embedded:///tmp/x", {"partitions": 6}),
    ]


def test_console_entry_point_keeps_exit_status_and_output(tmp_path) -> None:
    """`python -m pinpipe` leaves through cli.run (no interpreter teardown): statuses and output survive."""
    import subprocess
    import sys

    def pinpipe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pinpipe", *args], capture_output=True, text=True, timeout=60
        )

    assert pinpipe("--version").returncode == 0 and "pinpipe" in pinpipe("--version").stdout
    assert pinpipe("no-such-command").returncode == 2
    failed = pinpipe("batch", "run", "--workdir", str(tmp_path), "--lake", "bogus://x")
    assert failed.returncode == 1
    assert (
        failed.stderr.strip()
        == "pinpipe: error: unknown lake URL 'bogus://x': use file:///dir or s3://bucket/prefix"
    )


@pytest.mark.parametrize(
    ("change", "problems"),
    [
        ({}, 0),
        ({"ind": 2**63}, 1),
        ({"ind": True}, 1),
        ({"latitude": float("inf")}, 1),
        ({"longitude": float("nan")}, 1),
        ({"latitude": 2}, 0),
        ({"timestamp": "2020-13-01 00:00:00"}, 1),
        ({"timestamp": None}, 0),
        ({"country": 7}, 1),
    ],
)
def test_a_complete_record_is_judged_as_field_by_field(change: dict, problems: int) -> None:
    """Complete records are checked at once (the common case, cheap); the verdict is the same as the
    field-by-field check's."""
    record = {
        "ind": 1,
        "timestamp": "2020-01-01 00:00:00",
        "latitude": 1.5,
        "longitude": -2.0,
        "country": "F",
    }
    assert len(validate_record("geo", {**record, **change})) == problems
    pin = {"index": 2**63 - 1, "downloaded": -(2**63), **{f: "x" for f in ("unique_id", "title", "category")}}
    assert validate_record("pin", pin) == []
