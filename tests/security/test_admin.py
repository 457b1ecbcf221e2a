"""Stream creation and deletion: admin keys only, within their prefixes, under ceilings; /readyz notices."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pinpipe.config import Settings
from pinpipe.log.memory import MemoryLog
from tests.unit.api_support import GEO_RECORD, GEO_STREAM, client_for, total, with_api, write_keys_file

PRODUCER = "producer-key-0123456789"
ADMIN = "admin-key-0123456789ab"
OTHER_ADMIN = "other-admin-key-012345"
NEW = "streaming-0a1b2c3d4e5f-extra"


def admin_keys_file(tmp_path: Path) -> Path:
    """An admin of the default prefix and one of another prefix, as a keys file (role = "admin")."""
    keys = {"ops": (ADMIN, "0a1b2c3d4e5f", "admin"), "other": (OTHER_ADMIN, "ffffffffffff", "admin")}
    return write_keys_file(tmp_path / "keys.toml", keys)


def put(client, stream: str, headers: dict | None = None):
    body = {"Data": GEO_RECORD, "PartitionKey": "k"}
    return client.put(f"/streams/{stream}/record", json=body, headers=headers or {})


def test_a_producer_key_can_neither_delete_nor_create_a_stream(settings: Settings) -> None:
    log = MemoryLog(auto_create=False)
    key = {"X-API-Key": PRODUCER}
    with client_for(with_api(settings, api_keys=(PRODUCER,)), log) as client:
        assert put(client, GEO_STREAM, key).status_code == 200
        deleted = client.delete(f"/streams/{GEO_STREAM}", headers=key)
        created = client.post(f"/streams/{NEW}", json={"ShardCount": 1}, headers=key)
        for response in (deleted, created):
            assert (response.status_code, response.json()["error_code"]) == (403, 40302), response.text
            assert response.json()["__type"] == "AccessDeniedException"
        assert client.get(f"/streams/{GEO_STREAM}", headers=key).status_code == 200  # describe stays open
    assert total(log, GEO_STREAM) == 1 and NEW not in log.topics()


def test_an_open_api_produces_but_never_creates_or_deletes(settings: Settings) -> None:
    log = MemoryLog(auto_create=False)
    with client_for(settings, log) as client:
        assert put(client, GEO_STREAM).status_code == 200
        for response in (client.delete(f"/streams/{GEO_STREAM}"), client.post(f"/streams/{NEW}")):
            assert (response.status_code, response.json()["error_code"]) == (403, 40302)
            assert "PINPIPE_API__ADMIN_KEYS" in response.json()["message"]  # says how to configure one
    assert total(log, GEO_STREAM) == 1 and NEW not in log.topics()


def test_an_admin_key_manages_the_streams_of_its_prefixes_only(settings: Settings, tmp_path: Path) -> None:
    log = MemoryLog(auto_create=False)
    with client_for(with_api(settings, keys_file=admin_keys_file(tmp_path)), log) as client:
        mine, theirs = {"X-API-Key": ADMIN}, {"X-API-Key": OTHER_ADMIN}
        assert client.post(f"/streams/{NEW}", headers=theirs).status_code == 403
        assert client.post(f"/streams/{NEW}", headers=mine).status_code == 200
        assert client.delete(f"/streams/{NEW}", headers=theirs).status_code == 403
        assert client.delete(f"/streams/{NEW}", headers=mine).status_code == 200
    assert NEW not in log.topics()


def test_shard_count_has_a_configurable_ceiling(settings: Settings, tmp_path: Path) -> None:
    log = MemoryLog(auto_create=False)
    key = {"X-API-Key": ADMIN}
    with client_for(with_api(settings, keys_file=admin_keys_file(tmp_path)), log) as client:
        refused = client.post(f"/streams/{NEW}", json={"ShardCount": 1024}, headers=key)
        assert (refused.status_code, refused.json()["error_code"]) == (422, 42206)
        assert "api.max_shard_count" in refused.json()["message"]
        assert NEW not in log.topics()
        schema = client.get("/openapi.json").json()["paths"]["/streams/{name}"]["post"]["requestBody"]
        shard_count = schema["content"]["application/json"]["schema"]["properties"]["ShardCount"]
        assert shard_count["anyOf"][0]["maximum"] == 32  # the documented ceiling is the enforced one
    with client_for(
        with_api(settings, keys_file=admin_keys_file(tmp_path), max_shard_count=4), log
    ) as client:
        assert client.post(f"/streams/{NEW}", json={"ShardCount": 5}, headers=key).status_code == 422
        assert client.post(f"/streams/{NEW}", json={"ShardCount": 4}, headers=key).status_code == 200
    assert log.topics()[NEW] == 4


def test_the_number_of_streams_has_a_ceiling(settings: Settings, tmp_path: Path) -> None:
    """100 streams by default (three of them the prefix's own); the 101st is refused with 40902."""
    log = MemoryLog(auto_create=False)
    key = {"X-API-Key": ADMIN}
    api = with_api(settings, keys_file=admin_keys_file(tmp_path), max_streams_per_prefix=1000)
    with client_for(api, log) as client:
        for i in range(97):
            assert client.post(f"/streams/streaming-0a1b2c3d4e5f-s{i}", headers=key).status_code == 200
        refused = client.post(f"/streams/{NEW}", headers=key)
        assert (refused.status_code, refused.json()["error_code"]) == (409, 40902)
        assert refused.json()["__type"] == "LimitExceededException"
        assert NEW not in log.topics()
        assert client.delete("/streams/streaming-0a1b2c3d4e5f-s0", headers=key).status_code == 200
        assert client.post(f"/streams/{NEW}", headers=key).status_code == 200
    assert sum(name.startswith("streaming-") for name in log.topics()) == 100


def test_one_tenant_cannot_take_the_ceiling_from_another(settings: Settings, tmp_path: Path) -> None:
    """A prefix holds at most 20 streams by default, its three own included: the 21st is refused with
    40902 naming that limit, and another tenant's admin still creates streams of its prefix."""
    log = MemoryLog(auto_create=False)
    mine, theirs = {"X-API-Key": ADMIN}, {"X-API-Key": OTHER_ADMIN}
    with client_for(with_api(settings, keys_file=admin_keys_file(tmp_path)), log) as client:
        for i in range(17):
            assert client.post(f"/streams/streaming-0a1b2c3d4e5f-s{i}", headers=mine).status_code == 200
        refused = client.post(f"/streams/{NEW}", headers=mine)
        assert (refused.status_code, refused.json()["error_code"]) == (409, 40902)
        assert refused.json()["__type"] == "LimitExceededException"
        assert "api.max_streams_per_prefix" in refused.json()["message"]
        assert NEW not in log.topics()
        for i in range(20):
            assert client.post(f"/streams/streaming-ffffffffffff-s{i}", headers=theirs).status_code == 200
        assert client.post("/streams/streaming-ffffffffffff-s20", headers=theirs).status_code == 409
        assert client.delete("/streams/streaming-0a1b2c3d4e5f-s0", headers=mine).status_code == 200
        assert client.post(f"/streams/{NEW}", headers=mine).status_code == 200
    owned = [name for name in log.topics() if name.startswith("streaming-0a1b2c3d4e5f-")]
    assert len(owned) == 20


def test_the_ceiling_refusal_does_not_count_other_tenants_streams(settings: Settings, tmp_path: Path) -> None:
    """The ceiling is shared, but a tenant's refusal says the limit, not how many streams the log holds
    (mostly other tenants' here)."""
    log = MemoryLog(auto_create=False)
    for i in range(103):
        log.create_topic(f"streaming-9f8e7d6c5b4a-s{i}", 1)
    key = {"X-API-Key": ADMIN}
    with client_for(with_api(settings, keys_file=admin_keys_file(tmp_path)), log) as client:
        refused = client.post(f"/streams/{NEW}", headers=key)
    assert (refused.status_code, refused.json()["error_code"]) == (409, 40902)
    message = refused.json()["message"]
    assert "100" in message
    assert not re.search(r"10[1-9]", message), message


def test_readyz_is_503_while_a_stream_of_the_prefix_is_missing(settings: Settings, tmp_path: Path) -> None:
    log = MemoryLog(auto_create=False)
    key = {"X-API-Key": ADMIN}
    with client_for(with_api(settings, keys_file=admin_keys_file(tmp_path)), log) as client:
        assert client.get("/readyz").status_code == 200
        assert client.delete(f"/streams/{GEO_STREAM}", headers=key).status_code == 200
        assert put(client, GEO_STREAM, key).status_code == 404
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503 and GEO_STREAM in not_ready.json()["status"]
        assert client.post(f"/streams/{GEO_STREAM}", headers=key).status_code == 200
        assert client.get("/readyz").status_code == 200


def test_create_stream_accepts_exactly_the_names_its_schema_allows(
    settings: Settings, tmp_path: Path
) -> None:
    """schemathesis ST202: ``POST /streams/0`` was valid by the schema and refused with 40002."""
    log = MemoryLog(auto_create=False)
    key = {"X-API-Key": ADMIN}
    with client_for(settings, log) as client:
        parameter = client.get("/openapi.json").json()["paths"]["/streams/{name}"]["post"]["parameters"][0]
    pattern, max_length = parameter["schema"]["pattern"], parameter["schema"]["maxLength"]
    assert re.search(pattern, "0") is None
    with client_for(with_api(settings, admin_keys=(ADMIN,)), log) as client:
        refused = client.post("/streams/0", headers=key)
        assert (refused.status_code, refused.json()["error_code"]) == (400, 40002)

        whole = st.from_regex(pattern.removeprefix("^").removesuffix("$"), fullmatch=True)  # $: end of text

        @given(name=whole.filter(lambda n: len(n) <= max_length))
        @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def schema_valid_names_are_created(name: str) -> None:
            assert client.post(f"/streams/{name}", headers=key).status_code == 200, name
            assert client.delete(f"/streams/{name}", headers=key).status_code == 200, name

        schema_valid_names_are_created()
