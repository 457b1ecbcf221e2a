"""Generated requests against the whole API, from its own /openapi.json (schemathesis + hypothesis).

Every operation gets valid requests (positive) and requests that break the schema (negative), aimed both at
random names and at the real topics and streams. Whatever is sent: no 5xx, the status is documented, the
body matches the documented schema and media type, invalid requests are refused with 4xx, and the log
holds exactly the records the API acknowledged.
"""

from __future__ import annotations

from collections import defaultdict

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pinpipe.config import Settings
from pinpipe.ingest import create_app
from pinpipe.ingest.rest_v3 import cluster_id_of
from pinpipe.log.memory import MemoryLog
from tests.unit.api_support import GEO, GEO_STREAM, PIN, PIN_STREAM, USER, total, with_api

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
FREE_TOPIC = "free-topic"
"""A topic of no kind: any value is stored (on pin/geo/user a generated value rarely has its ``ind``)."""
NAMES: dict[str, list] = {
    "topic": [PIN, GEO, USER, FREE_TOPIC],
    "name": [PIN_STREAM, GEO_STREAM],
    "partition": [0, 2],
}
KEY = "fuzz-key-0001-abcdef"
EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 10}
schemathesis.serializer.alias("application/x-amz-json-1.1", "application/json")  # the Kinesis wire protocol


def run_examples(strategy, examples, checks, headers, params, writes, acknowledged) -> None:
    """Send ``examples`` cases drawn from ``strategy``; note the records acknowledged by a write."""

    @given(case=strategy)
    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a failure reproduces, and some cases write
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        response = case.call_and_validate(checks=checks, headers=headers)
        if response.status_code not in (200, 207) or not writes:
            return
        if params:
            name = case.path_parameters["topic" if "topic" in params else next(iter(params))]
        elif isinstance(case.body, dict) and isinstance(case.body.get("StreamName"), str):
            name = case.body["StreamName"]  # the Kinesis wire protocol: the stream is in the body
        else:
            return  # a wire operation naming no stream (ListStreams) writes nothing
        body = response.json()
        if "successes" in body:  # v3 records:batch
            acknowledged[name].update((e["partition_id"], e["offset"]) for e in body["successes"])
            return
        if "partition_id" in body:  # v3 records
            acknowledged[name].add((body["partition_id"], body["offset"]))
            return
        if "offsets" in body:
            placed = [(o["partition"], o["offset"]) for o in body["offsets"] if o["error_code"] is None]
        else:
            entries = body.get("Records", [body])
            placed = [
                (int(e["ShardId"].removeprefix("shardId-")), int(e["SequenceNumber"]))
                for e in entries
                if "SequenceNumber" in e
            ]
        acknowledged[name].update(placed)

    run()


def fuzz(settings: Settings, secured: bool, scale: float = 1.0) -> dict[str, set[tuple[int, int]]]:
    """Run every operation; return the (partition, offset) of every record acknowledged, per topic."""
    api_settings = with_api(settings, max_records=5, max_body_bytes=64 * 1024)
    if secured:
        api_settings = with_api(api_settings, api_keys=(KEY,))
    log = MemoryLog(auto_create=False)
    log.create_topic(FREE_TOPIC, 3)
    app = create_app(api_settings, log=log)
    names = {**NAMES, "cluster_id": [cluster_id_of(log.url)]}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    acknowledged: dict[str, set[tuple[int, int]]] = defaultdict(set)
    headers = {"X-API-Key": KEY} if secured else None
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) == 21
    for operation in operations:
        params = {p.name for p in operation.path_parameters}
        writes = operation.method.upper() in ("POST", "PUT") and operation.path != "/streams/{name}"
        for mode, base_examples in EXAMPLES.items():
            examples = max(3, int(base_examples * scale))
            strategies = [operation.as_strategy(generation_mode=mode)]
            if operation.method.upper() in ("GET", "PUT") or writes:
                # aim at the real topics and streams too, not only at random names
                for param in params:
                    strategies += [
                        operation.as_strategy(generation_mode=mode, path_parameters={param: name})
                        for name in names[param]
                    ]
            checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
            try:
                run_examples(st.one_of(strategies), examples, checks, headers, params, writes, acknowledged)
            except Unsatisfiable:
                # only string path parameters and no body: no request can break the schema
                assert mode is GenerationMode.NEGATIVE and not operation.body, operation.label
    for name in [*NAMES["topic"], *NAMES["name"]]:
        # exactly what was acknowledged is in the log (idempotent retries answer offsets already seen)
        assert total(log, name) == len(acknowledged[name]), name
    return acknowledged


def test_fuzz_open_api(settings: Settings) -> None:
    acknowledged = fuzz(settings, secured=False)
    assert sum(len(v) for v in acknowledged.values()) > 0, "the fuzzer never wrote a record"


def test_fuzz_secured_api(settings: Settings) -> None:
    """The same with a key configured (the schema then documents the security schemes)."""
    fuzz(settings, secured=True, scale=0.4)
