"""The emulator's sending: request shapes, headers, idempotency keys, retries, backoff (MockTransport)."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from pinpipe.config import Settings, load_settings
from pinpipe.locations import sqlite_url
from pinpipe.source import emulator
from pinpipe.source.database import open_source
from pinpipe.source.emulator import EmulatorOptions, run_emulator
from pinpipe.source.sender import HttpApiSender, RetryPolicy
from pinpipe.source.synthetic import seed_database

PREFIX = "0a1b2c3d4e5f"
RECORD = {"ind": 7, "timestamp": "2020-01-01 00:00:00", "latitude": 1.5, "longitude": 2.0, "country": "Chad"}


class Recorder:
    """A fake API: answers from a script of statuses (or exceptions), then 200."""

    def __init__(
        self, script: list[int | type[Exception]] | None = None, headers: dict[str, str] | None = None
    ):
        self.script = list(script or [])
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0) if self.script else 200
        if isinstance(step, type):
            raise step("boom", request=request)  # type: ignore[call-arg]
        if step != 200:
            return httpx.Response(
                step, json={"error_code": step * 100 + 1, "message": "no"}, headers=self.headers
            )
        if request.url.path.startswith("/topics/"):
            return httpx.Response(
                200, json={"offsets": [{"partition": 0, "offset": 0, "error_code": None, "error": None}]}
            )
        return httpx.Response(200, json={"ShardId": "shardId-000000000000", "SequenceNumber": "1"})


def _sender(recorder: Recorder, slept: list[float], **policy: float) -> HttpApiSender:
    return HttpApiSender(
        "http://api.test/",
        PREFIX,
        api_key="k-1",
        policy=RetryPolicy(**policy),  # type: ignore[arg-type]
        transport=httpx.MockTransport(recorder),
        sleep=slept.append,
        rng=random.Random(0),
    )


def test_batch_request_is_a_rest_proxy_v2_produce() -> None:
    recorder, slept = Recorder(), list[float]()
    result = _sender(recorder, slept).send("batch", "geo", RECORD, "run-3-geo")
    assert result.error is None and result.retries == 0 and slept == []
    (request,) = recorder.requests
    assert request.method == "POST" and str(request.url) == f"http://api.test/topics/{PREFIX}.geo"
    assert request.headers["Content-Type"] == "application/vnd.kafka.json.v2+json"
    assert request.headers["X-API-Key"] == "k-1" and request.headers["Idempotency-Key"] == "run-3-geo"
    assert json.loads(request.content) == {"records": [{"value": RECORD}]}


def test_stream_request_is_a_kinesis_put_record() -> None:
    recorder = Recorder()
    assert _sender(recorder, []).send("stream", "pin", {"index": 5, "title": "é"}, "r-0-pin").error is None
    (request,) = recorder.requests
    assert request.method == "PUT" and request.url.path == f"/streams/streaming-{PREFIX}-pin/record"
    body = json.loads(request.content)
    assert body == {
        "StreamName": f"streaming-{PREFIX}-pin",
        "Data": {"index": 5, "title": "é"},
        "PartitionKey": "5",
    }
    assert request.headers["Idempotency-Key"] == "r-0-pin"


@pytest.mark.parametrize("failure", [429, 503, 500, httpx.ConnectError, httpx.ReadTimeout])
def test_retriable_failures_are_retried_with_the_same_key(failure: int | type[Exception]) -> None:
    recorder, slept = Recorder([failure, failure, failure]), list[float]()
    result = _sender(recorder, slept).send("batch", "user", {"ind": 1}, "run-9-user")
    assert result.error is None and result.retries == 3
    assert len(recorder.requests) == 4
    assert {r.headers["Idempotency-Key"] for r in recorder.requests} == {"run-9-user"}
    assert {r.content for r in recorder.requests} == {recorder.requests[0].content}
    assert len(slept) == 3 and all(0 <= s <= 0.1 * 2**i for i, s in enumerate(slept))


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    slept: list[float] = []
    recorder = Recorder([503] * 20)
    result = _sender(recorder, slept, max_retries=6, base_s=1.0, max_backoff_s=4.0).send(
        "batch", "pin", {}, "k"
    )
    assert (
        result.error is not None and "gave up after 6 retries" in result.error and len(recorder.requests) == 7
    )
    assert max(slept) <= 4.0 and sum(slept) > 2.0  # full jitter within a growing, capped window
    slept.clear()
    recorder = Recorder([429], headers={"Retry-After": "2"})
    assert _sender(recorder, slept).send("batch", "pin", {}, "k").error is None
    assert slept == [2.0]


def test_per_record_retriable_error_code_is_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        code = 50003 if len(calls) == 1 else None
        return httpx.Response(
            200, json={"offsets": [{"partition": None, "offset": None, "error_code": code, "error": None}]}
        )

    sender = HttpApiSender(
        "http://api.test", PREFIX, transport=httpx.MockTransport(handler), sleep=lambda s: None
    )
    assert sender.send("batch", "pin", {}, "k").retries == 1 and len(calls) == 2


@pytest.mark.parametrize("status", [422, 400, 401, 403, 404])
def test_other_4xx_is_an_error_at_once(status: int) -> None:
    recorder, slept = Recorder([status]), list[float]()
    result = _sender(recorder, slept).send("batch", "geo", RECORD, "k")
    where = f"batch geo: POST http://api.test/topics/{PREFIX}.geo"
    assert result.error == f"{where}: HTTP {status} error_code {status * 100 + 1}: no"
    assert len(recorder.requests) == 1 and slept == []


@pytest.fixture
def seeded(settings: Settings, tmp_path: Path) -> Settings:
    url = sqlite_url(tmp_path / "src.db")
    engine = open_source(url)
    seed_database(engine, 11001, seed=5, progress=False)
    engine.dispose()
    return load_settings(workdir=settings.workdir, **{"source.url": url})


def test_run_sends_every_kind_to_topics_and_streams_with_stable_keys(seeded: Settings) -> None:
    recorder = Recorder([503, httpx.ConnectError])
    errors: list[str] = []
    options = EmulatorOptions(
        iterations=10, sleep=False, mode="both", run_id="r1", progress=False, api="http://x"
    )
    summary = run_emulator(
        seeded, options, transport=httpx.MockTransport(recorder), sleep=lambda s: None, on_error=errors.append
    )
    assert summary.iterations == 10 and summary.errors == 0 and errors == [] and summary.retries == 2
    assert summary.sent == {
        **{f"{PREFIX}.{k}": 10 for k in ("pin", "geo", "user")},
        **{f"streaming-{PREFIX}-{k}": 10 for k in ("pin", "geo", "user")},
    }
    keys = [r.headers["Idempotency-Key"] for r in recorder.requests]
    assert len(recorder.requests) == 62 and keys[:3] == ["r1-0-pin"] * 3  # two retries of the first record
    assert Counter(keys[2:]) == {f"r1-{i}-{k}": 2 for i in range(10) for k in ("pin", "geo", "user")}
    # the same seed sends the same rows: the dry run shows what was sent
    out = io.StringIO()
    run_emulator(seeded, EmulatorOptions(iterations=10, sleep=False, dry_run=True), out=out)
    first = json.loads(out.getvalue().splitlines()[0])
    assert json.loads(recorder.requests[0].content) == {"records": [{"value": first["pin"]}]}


def test_run_counts_errors_and_reports_each_kind_once(seeded: Settings) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        status = 422 if request.url.path.endswith(".geo") else 200
        return httpx.Response(
            status, json={"error_code": 42206, "message": "bad"} if status != 200 else {"offsets": [{}]}
        )

    errors: list[str] = []
    options = EmulatorOptions(iterations=5, sleep=False, api="http://x", progress=False)
    summary = run_emulator(seeded, options, transport=httpx.MockTransport(handler), on_error=errors.append)
    assert summary.errors == 5
    assert errors == [f"batch geo: POST http://x/topics/{PREFIX}.geo: HTTP 422 error_code 42206: bad"]
    assert summary.sent[f"{PREFIX}.geo"] == 0 and summary.sent[f"{PREFIX}.pin"] == 5
    assert "errors: 5" in summary.line()


def test_a_sender_that_cannot_start_leaves_no_source_connection_open(
    seeded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    disposed: list[bool] = []
    real_open = emulator.open_source

    def tracked_open(url: str, create: bool = True) -> Engine:
        engine = real_open(url, create=create)
        real_dispose = engine.dispose

        def dispose(close: bool = True) -> None:
            disposed.append(True)
            real_dispose(close)

        engine.dispose = dispose  # type: ignore[method-assign]
        return engine

    def broken_sender(*args: object, **kwargs: object) -> HttpApiSender:
        raise ValueError("no such proxy")

    monkeypatch.setattr(emulator, "open_source", tracked_open)
    monkeypatch.setattr(emulator, "HttpApiSender", broken_sender)
    with pytest.raises(ValueError, match="no such proxy"):
        run_emulator(seeded, EmulatorOptions(iterations=1, sleep=False, progress=False, api="http://x"))
    assert disposed == [True]
