"""Settings layers: defaults < pinpipe.toml < .env < environment < flags (README "Configuration")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pinpipe.config import Settings, load_settings
from pinpipe.errors import ConfigError


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Path:
    """The current directory is an empty tmp_path (where pinpipe.toml and .env are looked for)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PINPIPE_CONFIG")
    return tmp_path


def test_each_layer_overrides_the_one_below_field_by_field(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / "pinpipe.toml").write_text(
        'prefix = "aaaaaaaaaaaa"\n[log]\npartitions = 4\nurl = "kafka://toml:1"\n[lake]\nflush_size = 7\n'
    )
    (in_tmp / ".env").write_text("PINPIPE_LOG__URL=kafka://dotenv:2\nexport PINPIPE_LAKE__FLUSH_SIZE='8'\n")
    assert load_settings().log.url == "kafka://dotenv:2" and load_settings().lake.flush_size == 8
    monkeypatch.setenv("PINPIPE_LOG__URL", "kafka://env:3")
    settings = load_settings(**{"lake.idle_flush_s": 1.5, "log.stream_url": None})
    assert (
        settings.log.url == "kafka://env:3" and settings.log.partitions == 4
    )  # the toml's other field stays
    assert (
        settings.lake.flush_size == 8
        and settings.lake.idle_flush_s == 1.5
        and settings.prefix == "aaaaaaaaaaaa"
    )
    assert load_settings(**{"log.url": "kafka://flag:4"}).log.url == "kafka://flag:4"


def test_structured_settings_are_json_in_the_environment(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINPIPE_LOG", json.dumps({"url": "kafka://whole:1", "partitions": 2}))
    monkeypatch.setenv("PINPIPE_LOG__PARTITIONS", "9")  # a field beats its section's JSON
    monkeypatch.setenv("PINPIPE_LOG__KAFKA", json.dumps({"security.protocol": "SSL"}))
    monkeypatch.setenv("PINPIPE_LOG__KAFKA__SASL.USERNAME", "bob")  # one key of a table, lowercased
    monkeypatch.setenv("pinpipe_api__api_keys", '["k1-0123456789abcdef", "k2-0123456789abcdef"]')  # any case
    settings = load_settings()
    assert settings.log.url == "kafka://whole:1" and settings.log.partitions == 9
    assert settings.log.kafka == {"security.protocol": "SSL", "sasl.username": "bob"}
    assert [k.get_secret_value() for k in settings.api.api_keys] == [
        "k1-0123456789abcdef",
        "k2-0123456789abcdef",
    ]


def test_other_pinpipe_variables_are_not_settings(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    for name in ("PINPIPE_DAG_WORKDIR", "PINPIPE_DUCKDB_MEMORY_LIMIT", "PINPIPE_NO_SUCH", "OTHER_LOG__URL"):
        monkeypatch.setenv(name, "x")
    assert load_settings() == defaults and defaults.log.url == "" and defaults.workdir == Path(".pinpipe")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PINPIPE_API__API_KEYS", "k1", 'field "api".*is JSON'),  # was pydantic-settings' SettingsError
        ("PINPIPE_LOG__KAFKA", "{bad", 'field "log".*is JSON'),
        ("PINPIPE_LOG__PARTITIONS", "abc", "invalid setting log.partitions"),
        ("PINPIPE_LOG__NO_SUCH", "1", "invalid setting log.no_such: Extra inputs"),
        ("PINPIPE_LAKE__FORMAT", "xml", "invalid setting lake.format"),
    ],
)
def test_a_bad_variable_is_one_config_error_naming_it(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings()
    assert value not in str(caught.value)  # a value may be a secret: not repeated


def test_an_unreadable_toml_is_a_config_error(in_tmp: Path) -> None:
    (in_tmp / "pinpipe.toml").write_text("[log\n")
    with pytest.raises(ConfigError, match=r"pinpipe\.toml"):
        load_settings()


def test_duckdb_scratch_settings_reach_the_engine(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pinpipe.engines.duckdb import DuckDBEngine

    assert DuckDBEngine(load_settings()).memory_limit is None  # default: sized from the lake
    monkeypatch.setenv("PINPIPE_ENGINE__DUCKDB_MEMORY_LIMIT", "4GB")
    monkeypatch.setenv("PINPIPE_ENGINE__DUCKDB_ON_DISK", "true")
    engine = DuckDBEngine(load_settings())
    assert engine.memory_limit == "4GB" and engine.on_disk is True
