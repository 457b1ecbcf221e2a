"""schemathesis ``--checks all`` over the whole OpenAPI document, through its CLI against a real server.

Every check schemathesis has (server errors, status codes, content types, response schemas and headers,
schema-valid requests accepted, schema-invalid ones refused, unsupported methods with ``Allow``, missing
auth, stateful links) runs on every operation, in every phase, with bounded examples. Path names are
random and, half of the time, real: the three topics, and for the Kinesis streams the three streams
(PutRecords reports a record that fails its stream's schema per record, in a 200) plus a stream without a
schema. PutRecord and the v3 single-record produce are pointed at a stream or topic without a schema half
of the time: on the pin/geo/user ones a record failing the schema is refused whole (422, as documented),
which no single OpenAPI body schema can express per stream; the v3 one may also answer 422 to a
schema-valid body (the stateful phase reuses the real topic names other operations answered). The v3
routes get the log's real cluster id half of the time. The Kinesis wire protocol (``POST /``) is checked
like every route except that a schema-valid body may be refused (400/422): its schema depends on the
``X-Amz-Target`` header (PutRecord needs ``Data``, ListStreams nothing), which OpenAPI cannot express, so
only a generic object is documented.
The hooks module gives each ``Idempotency-Key`` a unique tail (see there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pinpipe.config import Settings
from pinpipe.ingest import create_app
from pinpipe.ingest.rest_v3 import cluster_id_of
from pinpipe.log.memory import MemoryLog
from pinpipe.serve import background_server
from tests.unit.api_support import GEO, GEO_STREAM, PIN, PIN_STREAM, USER, with_api

REPO = Path(__file__).resolve().parents[2]
API_KEY = "schemathesis-key-000001"
FREE_STREAM = "streaming-free"
FREE_TOPIC = "free-topic"
ACCEPTED_OR_REFUSED_RECORD = ["2xx", "401", "403", "404", "409", "422", "429"]
"""What a schema-valid single-record produce may answer: 422 when the record fails its topic's schema."""
WIRE_STATUSES = [*ACCEPTED_OR_REFUSED_RECORD, "400"]
"""What a schema-valid Kinesis wire request may answer: its body's schema depends on X-Amz-Target."""
EXAMPLES = 25


def config(path: Path, cluster: str) -> Path:
    streams = [PIN_STREAM, GEO_STREAM, f"streaming-{PIN.split('.')[0]}-user", FREE_STREAM]
    path.write_text(
        f"""
[dictionaries.topics]
values = {[PIN, GEO, USER]!r}

[dictionaries.streams]
values = {streams!r}

[dictionaries.free]
values = [{FREE_STREAM!r}]

[dictionaries.free_topic]
values = [{FREE_TOPIC!r}]

[dictionaries.clusters]
values = [{cluster!r}]

[parameters]
"path.topic" = {{ dictionary = "topics", probability = 0.5 }}
"path.name" = {{ dictionary = "streams", probability = 0.5 }}
"path.cluster_id" = {{ dictionary = "clusters", probability = 0.5 }}

[[operations]]
include-name = "PUT /streams/{{name}}/record"
parameters = {{ "path.name" = {{ dictionary = "free", probability = 0.5 }} }}

[[operations]]
include-name = "POST /v3/clusters/{{cluster_id}}/topics/{{topic}}/records"
parameters = {{ "path.topic" = {{ dictionary = "free_topic", probability = 0.5 }} }}
checks = {{ positive_data_acceptance = {{ expected-statuses = {ACCEPTED_OR_REFUSED_RECORD!r} }} }}

[[operations]]
include-name = "POST /"
checks = {{ positive_data_acceptance = {{ expected-statuses = {WIRE_STATUSES!r} }} }}
""".replace("'", '"')
    )
    return path


@pytest.mark.parametrize("secured", [False, True], ids=["open", "secured"])
def test_schemathesis_checks_all_find_nothing(settings: Settings, tmp_path: Path, secured: bool) -> None:
    api_settings = with_api(settings, max_records=5, max_body_bytes=64 * 1024)
    if secured:
        api_settings = with_api(api_settings, api_keys=(API_KEY,))
    log = MemoryLog(auto_create=False)
    log.create_topic(FREE_STREAM, 3)
    log.create_topic(FREE_TOPIC, 3)
    app = create_app(api_settings, log=log)
    st = Path(sys.executable).with_name("st")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "SCHEMATHESIS_HOOKS": "tests.security.schemathesis_hooks",
    }
    with background_server(app) as url:
        command = [
            str(st),
            "--config-file",
            str(config(tmp_path / "schemathesis.toml", cluster_id_of(log.url))),
            "run",
        ]
        command += [f"{url}/openapi.json", "--checks", "all", "--max-examples", str(EXAMPLES)]
        command += ["--seed", "20261206", "--workers", "1", "--no-color"]
        command += ["--report-dir", str(tmp_path / "report")]
        if secured:
            command += ["--header", f"X-API-Key: {API_KEY}"]
        run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "21 selected / 21 total" in run.stdout
