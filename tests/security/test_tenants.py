"""Tenant isolation: a prefix reaches exactly its own topics and streams, whatever the names look like."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinpipe.config import Settings, load_settings
from pinpipe.errors import ConfigError
from pinpipe.ingest.auth import KeyRing
from pinpipe.keys import Principal
from pinpipe.log.memory import MemoryLog
from tests.unit.api_support import (
    GEO,
    GEO_RECORD,
    GEO_STREAM,
    KAFKA_JSON,
    client_for,
    total,
    with_api,
    write_keys_file,
)

A = "0a1b2c3d4e5f"
LONGER = "0a1b2c3d4e5fab"  # another tenant whose prefix starts with A's
KEYS = {
    "a": "tenant-a-key-0123456789",
    "longer": "tenant-longer-key-0123456789",
    "str": "tenant-str-key-012345",
}
PREFIX = r"[a-z0-9][a-z0-9_]{0,63}"


def keys_file(tmp_path: Path, roles: dict[str, str] | None = None) -> Path:
    prefixes = {"a": A, "longer": LONGER, "str": "str"}
    keys = {name: (KEYS[name], prefix, (roles or {}).get(name)) for name, prefix in prefixes.items()}
    return write_keys_file(tmp_path / "keys.toml", keys)


def tenant_log() -> MemoryLog:
    log = MemoryLog(auto_create=False)
    log.create_topic(f"{LONGER}.geo", 3)
    log.create_topic(f"streaming-{LONGER}-geo", 3)
    return log


def produce(client, topic: str, key: str):
    body = {"records": [{"value": GEO_RECORD}]}
    return client.post(f"/topics/{topic}", json=body, headers={**KAFKA_JSON, "X-API-Key": key})


def put(client, stream: str, key: str):
    body = {"Data": GEO_RECORD, "PartitionKey": "k"}
    return client.put(f"/streams/{stream}/record", json=body, headers={"X-API-Key": key})


def test_a_prefix_does_not_reach_a_tenant_whose_prefix_starts_with_it(
    settings: Settings, tmp_path: Path
) -> None:
    log = tenant_log()
    secured = with_api(settings, keys_file=keys_file(tmp_path, {"a": "admin"}))
    with client_for(secured, log) as client:
        key = KEYS["a"]
        for response in (
            produce(client, f"{LONGER}.geo", key),
            put(client, f"streaming-{LONGER}-geo", key),
            client.get(f"/streams/streaming-{LONGER}-geo", headers={"X-API-Key": key}),
            client.delete(
                f"/streams/streaming-{LONGER}-geo", headers={"X-API-Key": key}
            ),  # even an admin of A
        ):
            assert response.status_code == 403, response.text
        assert f"{LONGER}.geo" not in client.get("/topics", headers={"X-API-Key": key}).json()
        listed = client.get("/streams", headers={"X-API-Key": key}).json()["StreamNames"]
        assert f"streaming-{LONGER}-geo" not in listed and GEO_STREAM in listed
        assert produce(client, GEO, key).status_code == 200  # its own names still work
        assert produce(client, f"{LONGER}.geo", KEYS["longer"]).status_code == 200
    assert f"streaming-{LONGER}-geo" in log.topics()
    assert total(log, f"{LONGER}.geo") == 1 and total(log, f"streaming-{LONGER}-geo") == 0


def test_a_short_prefix_does_not_reach_every_stream(settings: Settings, tmp_path: Path) -> None:
    """A key limited to 'str' once matched every 'streaming-...' name."""
    log = tenant_log()
    with client_for(with_api(settings, keys_file=keys_file(tmp_path)), log) as client:
        key = KEYS["str"]
        assert put(client, GEO_STREAM, key).status_code == 403
        assert put(client, f"streaming-{LONGER}-geo", key).status_code == 403
        assert client.get("/streams", headers={"X-API-Key": key}).json()["StreamNames"] == []
    assert total(log, GEO_STREAM) == 0


@given(
    mine=st.from_regex(PREFIX, fullmatch=True),
    other=st.from_regex(PREFIX, fullmatch=True),
    name=st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True),
)
def test_a_name_has_one_owner(mine: str, other: str, name: str) -> None:
    """A key for prefix P reaches P.<name> and streaming-P-<name>, and no name of another prefix."""
    principal = Principal("tenant", frozenset({mine}))
    for form in (f"{other}.{name}", f"streaming-{other}-{name}"):
        assert principal.may_use(form) == (other == mine), form


@pytest.mark.parametrize("prefix", ["0A1B2C3D4E5F", "a-b", "a.b", "", "_a", "x" * 65, "café", "a b"])
def test_a_prefix_outside_the_grammar_is_refused(settings: Settings, tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        load_settings(workdir=tmp_path, prefix=prefix)
    path = tmp_path / "keys.toml"
    path.write_text(f'[keys.t]\nkey = "{KEYS["a"]}"\nprefixes = ["{prefix}"]\n')
    with pytest.raises(ConfigError, match="prefix"):
        KeyRing(with_api(settings, keys_file=path).api)


def test_serve_with_a_bad_prefix_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from pinpipe.cli import main

    monkeypatch.setattr(
        uvicorn.Server, "run", lambda *args, **kwargs: pytest.fail("served with a bad prefix")
    )

    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "api",
                "serve",
                "--workdir",
                str(tmp_path),
                "--log",
                "memory://",
                "--port",
                "0",
                "--prefix",
                "a-b",
            ]
        )
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pinpipe: error: invalid setting prefix") and "a-z, 0-9 and _" in err


def test_metrics_need_a_key_and_show_the_callers_prefixes_only(settings: Settings, tmp_path: Path) -> None:
    log = tenant_log()
    with client_for(with_api(settings, keys_file=keys_file(tmp_path)), log) as client:
        assert produce(client, GEO, KEYS["a"]).status_code == 200
        assert produce(client, f"{LONGER}.geo", KEYS["longer"]).status_code == 200
        assert client.get("/metrics").status_code == 401
        mine = client.get("/metrics", headers={"X-API-Key": KEYS["a"]}).text
        theirs = client.get("/metrics", headers={"Authorization": f"Bearer {KEYS['longer']}"}).text
    assert f'topic="{GEO}"' in mine and LONGER not in mine
    assert f'topic="{LONGER}.geo"' in theirs and f'topic="{GEO}"' not in theirs


def test_a_tenants_metrics_do_not_count_another_tenants_requests(settings: Settings, tmp_path: Path) -> None:
    """The request counts and latencies of every route, shared by all tenants, told a tenant how many
    requests the others sent, when, and which of them failed; they are for keys on every prefix."""
    log = tenant_log()
    admin = "operator-key-0123456789"
    secured = with_api(settings, keys_file=keys_file(tmp_path), api_keys=[admin])
    with client_for(secured, log) as client:
        before = client.get("/metrics", headers={"X-API-Key": KEYS["a"]}).text
        for _ in range(3):
            assert produce(client, f"{LONGER}.geo", KEYS["longer"]).status_code == 200
        assert produce(client, GEO, KEYS["longer"]).status_code == 403
        after = client.get("/metrics", headers={"X-API-Key": KEYS["a"]}).text
        operator = client.get("/metrics", headers={"X-API-Key": admin}).text
    assert after == before
    assert "pinpipe_api_requests_total" not in after and "duration" not in after
    assert 'pinpipe_api_requests_total{route="/topics/{topic}",method="POST",status="200"} 3' in operator
    assert 'pinpipe_api_requests_total{route="/topics/{topic}",method="POST",status="403"} 1' in operator
