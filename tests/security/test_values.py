"""The API never changes a value it acknowledges: the log holds each number as it was sent (a compact
value is stored byte for byte), or the record is refused (42206, the field named) when a table could not
hold it. Both dialects: the REST proxy's records and the Kinesis proxy's ``Data`` (object or base64)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pinpipe.config import Settings
from pinpipe.log.memory import MemoryLog
from pinpipe.schema import stream_name, topic_name
from tests.security.pipeline import KAFKA_JSON, Pipeline, as_sent, pipeline
from tests.unit.api_support import client_for, total

GEO = '{"ind":1,"timestamp":"2020-01-01 00:00:00","latitude":1.5,"longitude":2.5,"country":"X"'


def stored_values(p: Pipeline, name: str) -> list[bytes]:
    return [r.value for r in p.stored(name).values()]


def both_dialects(p: Pipeline, value: str) -> list[bytes]:
    """Send ``value`` (a geo record's JSON text) once per dialect; the values each stored."""
    p.send("geo", [value])
    prefix = p.settings.prefix
    return [*stored_values(p, topic_name(prefix, "geo")), *stored_values(p, stream_name(prefix, "geo"))]


@pytest.mark.parametrize(
    "number",
    ["1180591620717411303424", "18446744073709551616", "1e400", "-1e400", "1e-400", "-0", "1.10", "1E2"],
)
def test_a_number_in_an_unknown_field_is_stored_as_sent(tmp_path: Path, number: str) -> None:
    value = f'{GEO},"extra":{number}}}'
    with pipeline(tmp_path / "work") as p:
        assert both_dialects(p, value) == [value.encode()] * 2


def test_1e400_beside_a_2_pow_70_integer_is_not_stored_as_infinity(tmp_path: Path) -> None:
    value = f'{GEO},"big":{2**70},"huge":[1e400,{{"n":-1e400}}]}}'
    with pipeline(tmp_path / "work") as p:
        stored = both_dialects(p, value)
    assert stored == [value.encode()] * 2
    assert all(b"Infinity" not in s for s in stored)


@pytest.mark.parametrize("field", ["latitude", "longitude"])
def test_1e400_in_a_float_field_is_refused_not_stored_as_null(tmp_path: Path, field: str) -> None:
    with pipeline(tmp_path / "work") as p:
        p.send("geo", [(GEO + "}").replace(f'"{field}":', f'"{field}":1e400,"was":')])
        assert p.accepted.topics["geo"] == [] and p.accepted.streams["geo"] == []
        assert all(f"field '{field}' must be a finite number" in e for e in p.accepted.refused)
        assert len(p.accepted.refused) == 2


@pytest.mark.parametrize("ind", [2**63, 2**63 + 1, 2**64 - 1])
def test_an_ind_beyond_bigint_is_refused_not_accepted_and_quarantined_later(tmp_path: Path, ind: int) -> None:
    with pipeline(tmp_path / "work") as p:
        p.send("geo", [GEO.replace('"ind":1', f'"ind":{ind}') + "}"])
        assert p.accepted.topics["geo"] == [] and p.accepted.streams["geo"] == []
        assert all("field 'ind' must be an integer from -2**63 to 2**63-1" in e for e in p.accepted.refused)
        assert len(p.accepted.refused) == 2


def test_negative_zeros_keep_their_sign(tmp_path: Path) -> None:
    value = GEO.replace('"ind":1', '"ind":-0').replace('"latitude":1.5', '"latitude":-0.0') + "}"
    with pipeline(tmp_path / "work") as p:
        assert both_dialects(p, value) == [value.encode()] * 2


def test_base64_kinesis_data_keeps_its_numbers(tmp_path: Path) -> None:
    value = f'{GEO},"big":{2**70},"tiny":1e-400,"zero":-0}}'
    body = {"Data": base64.b64encode(value.encode()).decode(), "PartitionKey": "k"}
    with pipeline(tmp_path / "work") as p:
        name = stream_name(p.settings.prefix, "geo")
        assert p.client.put(f"/streams/{name}/record", json=body).status_code == 200
        assert stored_values(p, name) == [value.encode()]


def test_a_spaced_body_stores_the_same_value_with_every_number_as_sent(tmp_path: Path) -> None:
    """Whitespace is not part of a value: the log holds compact JSON, numbers spelled as sent."""
    value = '{ "ind" : 12 , "latitude" : 1.250 , "longitude" : -3E-2 , "n" : [ 1e400 , 2.0 ] }'
    body = '{ "records" : [ { "value" : ' + value + " } ] }"
    with pipeline(tmp_path / "work") as p:
        name = topic_name(p.settings.prefix, "geo")
        answer = p.client.post(f"/topics/{name}", content=body, headers=KAFKA_JSON)
        assert answer.json()["offsets"][0]["error_code"] is None
        (stored,) = stored_values(p, name)
    assert stored == b'{"ind":12,"latitude":1.250,"longitude":-3E-2,"n":[1e400,2.0]}'
    assert as_sent(stored) == as_sent(value)
    assert json.loads(stored)["latitude"] == 1.25


def test_a_value_nested_deeper_than_orjson_writes_is_stored_as_sent(tmp_path: Path) -> None:
    """A guard (this passed before too): 300 levels, past orjson's 254, still stored byte for byte."""
    value = f'{GEO},"deep":{"[" * 300}1e400,-0{"]" * 300}}}'
    with pipeline(tmp_path / "work") as p:
        assert both_dialects(p, value) == [value.encode()] * 2


@pytest.mark.parametrize(
    "value",
    [
        f'{GEO},"ind":"x"}}',  # the same name twice: a parser keeps one of them, which one is its choice
        f'{GEO},"extra":{{"a":1,"a":2}}}}',  # also in a nested object of an unknown field
    ],
)
def test_a_member_named_twice_is_refused_not_stored_as_one(settings: Settings, value: str) -> None:
    """``{"ind":1,"ind":"x"}`` was acknowledged and stored as ``{"ind":"x"}``: not what was sent. Whole
    bodies are refused (40001), in every dialect, as is base64 Kinesis ``Data`` of such JSON (42206)."""
    log = MemoryLog(auto_create=False)
    prefix = settings.prefix
    topic, stream = topic_name(prefix, "geo"), stream_name(prefix, "geo")
    with client_for(settings, log) as client:
        v2 = client.post(
            f"/topics/{topic}", content=f'{{"records":[{{"value":{value}}}]}}', headers=KAFKA_JSON
        )
        cluster = client.get("/v3/clusters").json()["data"][0]["cluster_id"]
        v3 = client.post(
            f"/v3/clusters/{cluster}/topics/{topic}/records",
            content=f'{{"value":{{"type":"JSON","data":{value}}}}}',
            headers={"Content-Type": "application/json"},
        )
        kinesis = client.put(f"/streams/{stream}/record", content=f'{{"Data":{value},"PartitionKey":"k"}}')
        for answer in (v2, v3, kinesis):
            assert answer.status_code == 400 and answer.json()["error_code"] == 40001, answer.text
            assert "named twice" in answer.json()["message"]
        data = base64.b64encode(value.encode()).decode()
        encoded = client.put(f"/streams/{stream}/record", json={"Data": data, "PartitionKey": "k"})
        assert encoded.status_code == 422 and encoded.json()["error_code"] == 42206
        assert (
            client.post(
                f"/topics/{topic}", content=f'{{"records":[{{"value":{GEO}}}}}]}}', headers=KAFKA_JSON
            ).json()["offsets"][0]["error_code"]
            is None
        )
    assert total(log, topic) == 1 and total(log, stream) == 0
