"""API keys of the ingestion API: configured keys, prefixes, 401/403, and secrets kept out of logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pinpipe.config import Settings
from pinpipe.errors import ConfigError
from pinpipe.ingest.auth import KeyRing
from pinpipe.log.memory import MemoryLog
from tests.unit.api_support import (
    GEO,
    GEO_RECORD,
    GEO_STREAM,
    KAFKA_JSON,
    PIN,
    client_for,
    total,
    with_api,
    write_keys_file,
)

CLI_KEY = "cli-secret-1234-abcd"
LIMITED_KEY = "limited-secret-5678"
OTHER_KEY = "other-secret-9999"


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    keys = {"emulator": (LIMITED_KEY, "0a1b2c3d4e5f", None), "other": (OTHER_KEY, "ffffffffffff", None)}
    return write_keys_file(tmp_path / "keys.toml", keys)


@pytest.fixture
def secured(settings: Settings, keys_file: Path) -> Settings:
    return with_api(settings, api_keys=(CLI_KEY,), keys_file=keys_file)


def post(client, topic: str, headers: dict):
    return client.post(
        f"/topics/{topic}", json={"records": [{"value": GEO_RECORD}]}, headers={**KAFKA_JSON, **headers}
    )


def put(client, stream: str, headers: dict):
    return client.put(
        f"/streams/{stream}/record", json={"Data": GEO_RECORD, "PartitionKey": "k"}, headers=headers
    )


def test_open_api_without_configured_keys_warns(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    log = MemoryLog(auto_create=False)
    with caplog.at_level(logging.WARNING, "pinpipe.api"), client_for(settings, log) as client:
        assert post(client, GEO, {}).status_code == 200
    assert "OPEN" in caplog.text


def test_missing_or_unknown_key_is_401(secured: Settings) -> None:
    log = MemoryLog(auto_create=False)
    with client_for(secured, log) as client:
        for headers in (
            {},
            {"X-API-Key": "wrong"},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Basic eA=="},
        ):
            response = post(client, GEO, headers)
            assert (response.status_code, response.json()["error_code"]) == (401, 40101), headers
            kinesis = put(client, GEO_STREAM, headers)
            assert kinesis.status_code == 401
            assert kinesis.json()["__type"] == "MissingAuthenticationTokenException"
        assert client.get("/topics").status_code == 401
        assert client.get("/streams").status_code == 401
        assert total(log, GEO) == 0
        # health and readiness need no key; /metrics does once keys are configured
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 401


@pytest.mark.parametrize("key", [CLI_KEY, LIMITED_KEY])
def test_both_headers_carry_a_key(secured: Settings, key: str) -> None:
    log = MemoryLog(auto_create=False)
    with client_for(secured, log) as client:
        assert post(client, GEO, {"X-API-Key": key}).status_code == 200
        assert post(client, GEO, {"Authorization": f"Bearer {key}"}).status_code == 200
        assert put(client, GEO_STREAM, {"authorization": f"bearer {key}"}).status_code == 200
        assert total(log, GEO) == 2


def test_prefixes_limit_a_key(secured: Settings) -> None:
    log = MemoryLog(auto_create=False)
    log.create_topic("ffffffffffff.geo")
    with client_for(secured, log) as client:
        allowed = {"X-API-Key": LIMITED_KEY}
        assert post(client, GEO, allowed).status_code == 200
        denied = post(client, "ffffffffffff.geo", allowed)
        assert (denied.status_code, denied.json()["error_code"]) == (403, 40301)
        assert "emulator" in denied.json()["message"] and LIMITED_KEY not in denied.text
        # the other key: its own prefix only, even for topics that do not exist (no existence leak)
        other = {"X-API-Key": OTHER_KEY}
        assert post(client, GEO, other).status_code == 403
        assert post(client, "0a1b2c3d4e5f.nothing", other).status_code == 403
        assert post(client, "ffffffffffff.geo", other).status_code == 200
        kinesis = put(client, GEO_STREAM, other)
        assert (kinesis.status_code, kinesis.json()["__type"]) == (403, "AccessDeniedException")
        # listings show what the key may use
        assert client.get("/topics", headers=allowed).json() == sorted(
            n for n in log.topics() if n.startswith("0a1b2c3d4e5f.")
        )
        assert client.get("/topics", headers=other).json() == ["ffffffffffff.geo"]
        assert client.get("/streams", headers=other).json()["StreamNames"] == []
        assert GEO_STREAM in client.get("/streams", headers=allowed).json()["StreamNames"]
        # a command-line key writes everywhere
        assert post(client, "ffffffffffff.geo", {"X-API-Key": CLI_KEY}).status_code == 200
        assert total(log, "ffffffffffff.geo") == 2
        assert total(log, GEO) == 1


def test_secrets_never_reach_the_logs(secured: Settings, caplog: pytest.LogCaptureFixture) -> None:
    log = MemoryLog(auto_create=False)
    with caplog.at_level(logging.DEBUG), client_for(secured, log) as client:
        post(client, GEO, {"X-API-Key": LIMITED_KEY})
        post(client, "ffffffffffff.geo", {"X-API-Key": LIMITED_KEY})
        post(client, GEO, {"X-API-Key": "wrong-guess"})
        client.get("/metrics")
    for secret in (CLI_KEY, LIMITED_KEY, OTHER_KEY, "wrong-guess"):
        assert secret not in caplog.text
    assert "OPEN" not in caplog.text


@pytest.mark.parametrize(
    "content",
    [
        "not toml at all [",
        '[keys.a]\nprefixes = ["x"]\n',
        '[keys.a]\nkey = "k"\nprefixes = "0a1b2c3d4e5f"\n',
    ],
)
def test_bad_keys_file_is_a_config_error(settings: Settings, tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match="keys"):
        KeyRing(with_api(settings, keys_file=path).api)
    with pytest.raises(ConfigError, match="cannot read"):
        KeyRing(with_api(settings, keys_file=tmp_path / "missing.toml").api)


def test_rate_limit_is_per_key(secured: Settings) -> None:
    log = MemoryLog(auto_create=False)
    with client_for(with_api(secured, rate_limit=0.01, rate_burst=1), log) as client:
        assert post(client, GEO, {"X-API-Key": LIMITED_KEY}).status_code == 200
        limited = post(client, GEO, {"X-API-Key": LIMITED_KEY})
        assert (limited.status_code, limited.json()["error_code"]) == (429, 42901)
        assert int(limited.headers["Retry-After"]) >= 1
        assert post(client, GEO, {"X-API-Key": CLI_KEY}).status_code == 200  # its own bucket
        kinesis = put(client, GEO_STREAM, {"X-API-Key": LIMITED_KEY})
        assert (kinesis.status_code, kinesis.json()["__type"]) == (429, "LimitExceededException")
        assert PIN not in log.topics() or total(log, PIN) == 0


def test_serve_with_a_missing_keys_file_is_one_line_and_exit_1(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pinpipe.cli import main

    args = ["api", "serve", "--workdir", str(tmp_path), "--log", "memory://", "--port", "0"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--keys-file", str(tmp_path / "missing.toml")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pinpipe: error: cannot read API keys file") and "\n" not in err
