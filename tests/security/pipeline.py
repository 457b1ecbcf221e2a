"""A whole pipeline on one workdir, for feeding it hostile records: the API over the embedded log, then the
lake sink, the DuckDB batch job, the embedded stream processor and the dashboard's JSON routes.

Records are given as JSON text (so numbers can be spelled as a client spells them: ``1e400``, ``-0``,
``2**70`` in full); :func:`as_sent` reads JSON with every number kept as its text, the oracle for "what
is stored equals what was acknowledged".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import patch

from fastapi.testclient import TestClient

from pinpipe.config import Settings, load_settings
from pinpipe.dashboard.app import create_dashboard_app
from pinpipe.engines import run_batch
from pinpipe.engines.base import BatchResult
from pinpipe.ingest import create_app
from pinpipe.lake.sink import run_sink
from pinpipe.lake.store import open_store
from pinpipe.log.base import Record
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.schema import KINDS, Kind, stream_name, topic_name
from pinpipe.streaming.processor import StreamSummary, run_stream
from pinpipe.transform.queries import OUTPUTS, BatchOptions
from tests.unit.api_support import read_all

KAFKA_JSON = {"Content-Type": "application/vnd.kafka.json.v2+json"}


@dataclass(frozen=True)
class Number:
    """A JSON number as its text (the oracle never converts it)."""

    text: str


def as_sent(text: str | bytes) -> Any:
    """The JSON value of ``text`` with every number kept as a :class:`Number` of its exact text."""
    return json.loads(text, parse_int=Number, parse_float=Number, parse_constant=Number)


@contextmanager
def isolated_settings(workdir: Path, **overrides: Any) -> Iterator[Settings]:
    """Settings on ``workdir`` that no PINPIPE_* variable or pinpipe.toml of the developer changes (the
    variables are put back afterwards)."""
    with patch.dict(os.environ):
        for name in [n for n in os.environ if n.startswith("PINPIPE_")]:
            del os.environ[name]
        os.environ["PINPIPE_CONFIG"] = str(workdir / "no-such-pinpipe.toml")
        yield load_settings(workdir=workdir, **{"stream.max_wait_s": 0.0, **overrides})


@dataclass
class Accepted:
    """What the API acknowledged, per kind: the sent record texts and where each landed."""

    topics: dict[Kind, list[tuple[str, int, int]]] = field(default_factory=lambda: {k: [] for k in KINDS})
    streams: dict[Kind, list[tuple[str, int, int]]] = field(default_factory=lambda: {k: [] for k in KINDS})
    refused: list[str] = field(default_factory=list)
    """Error messages of the refused records (both dialects)."""


class Pipeline:
    def __init__(self, settings: Settings, log: EmbeddedLog, client: TestClient) -> None:
        self.settings = settings
        self.log = log
        self.client = client
        self.accepted = Accepted()

    def send(self, kind: Kind, records: list[str]) -> None:
        """POST the records to the kind's topic and PutRecords them to its stream (one request each)."""
        prefix = self.settings.prefix
        body = '{"records":[' + ",".join('{"value":' + r + "}" for r in records) + "]}"
        answer = self.client.post(f"/topics/{topic_name(prefix, kind)}", content=body, headers=KAFKA_JSON)
        assert answer.status_code == 200, answer.text
        for text, outcome in zip(records, answer.json()["offsets"], strict=True):
            if outcome["error_code"] is None:
                self.accepted.topics[kind].append((text, outcome["partition"], outcome["offset"]))
            else:
                assert outcome["error_code"] == 42206, outcome
                self.accepted.refused.append(outcome["error"])
        body = '{"Records":[' + ",".join('{"Data":' + r + ',"PartitionKey":"k"}' for r in records) + "]}"
        answer = self.client.put(f"/streams/{stream_name(prefix, kind)}/records", content=body)
        assert answer.status_code == 200, answer.text
        for text, result in zip(records, answer.json()["Records"], strict=True):
            if "ErrorCode" not in result:
                shard = int(result["ShardId"].removeprefix("shardId-"))
                self.accepted.streams[kind].append((text, shard, int(result["SequenceNumber"])))
            else:
                self.accepted.refused.append(result["ErrorMessage"])

    def stored(self, name: str) -> dict[tuple[int, int], Record]:
        return {(r.partition, r.offset): r for r in read_all(self.log, name)}

    def sink(self) -> None:
        run_sink(self.settings, log=self.log)

    def lake_lines(self, kind: Kind) -> int:
        store = open_store(self.settings.lake_url)
        keys = store.list(f"topics/{topic_name(self.settings.prefix, kind)}/")
        return sum(store.get(key).count(b"\n") for key in keys)

    def batch(self) -> BatchResult:
        return run_batch(self.settings, BatchOptions(keep_duplicates=True))

    def stream(self) -> StreamSummary:
        return run_stream(self.settings, log=self.log)

    def dashboard_answers(self) -> dict[str, int]:
        """HTTP status of each JSON route of the dashboard."""
        with TestClient(create_dashboard_app(self.settings)) as dashboard:
            paths = ["/api/metrics", "/api/status", "/api/batch", *(f"/api/batch/{name}" for name in OUTPUTS)]
            return {path: dashboard.get(path).status_code for path in paths}


@contextmanager
def quick_pairing() -> Iterator[None]:
    """The stream processor decides a pin with no geo event as soon as it has read every partition to its
    end (no 5 s pairing window, no 2 s margin): the same code runs, an example takes a second, not seven."""
    from pinpipe.streaming import keeper

    config = partial(keeper.MetricsConfig, pair_window_s=0.0)
    with patch.object(keeper, "MetricsConfig", config), patch.object(keeper, "CAUGHT_UP_MARGIN_S", 0.0):
        yield


@contextmanager
def pipeline(workdir: Path, **overrides: Any) -> Iterator[Pipeline]:
    with isolated_settings(workdir, **overrides) as settings:
        log = EmbeddedLog(f"embedded://{workdir.resolve() / 'log'}")
        try:
            with TestClient(create_app(settings, log=log)) as client:
                yield Pipeline(settings, log, client)
        finally:
            log.close()
