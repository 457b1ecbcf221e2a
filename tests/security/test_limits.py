"""Resource limits and the answers of the framework's own errors.

Stalled bodies run against a real uvicorn server (the limits are about sockets and memory); the others
through the test client.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from pinpipe import exact_json
from pinpipe.config import Settings
from pinpipe.errors import ConfigError
from pinpipe.ingest import create_app
from pinpipe.ingest.body import LargeBodyWork
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.log.memory import MemoryLog
from pinpipe.serve import background_server
from tests.unit.api_support import (
    GEO_STREAM,
    KAFKA_JSON,
    PIN,
    PIN_STREAM,
    USER,
    client_for,
    open_backend,
    total,
    with_api,
)


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[TestClient, MemoryLog]]:
    log = MemoryLog(auto_create=False)
    with TestClient(create_app(settings, log=log), raise_server_exceptions=False) as client:
        yield client, log


def start_body(
    url: str, declared: int, sent: int, key: str | None = None, content_type: str = "application/json"
) -> socket.socket:
    """A connection that sent the headers and ``sent`` bytes of a ``declared``-byte body, sending ``key``
    as X-API-Key if given, then stalls."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f"POST /topics/{USER} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {declared}\r\nConnection: close\r\n"
        + (f"X-API-Key: {key}\r\n" if key else "")
        + "\r\n"
    )
    sock.sendall(head.encode() + b"[" * sent)
    return sock


def answer(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """The response's bytes and whether the server then closed the connection, within ``timeout``. A
    server that closes with part of the body unread resets the connection, which may drop its answer."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
        return data, True
    except ConnectionResetError:
        return data, True
    except TimeoutError:
        return data, False


def test_a_stalled_body_is_answered_408_and_the_connection_closed(settings: Settings) -> None:
    app = create_app(with_api(settings, body_timeout_s=0.5), log=MemoryLog(auto_create=False))
    with background_server(app) as url:
        sock = start_body(url, declared=100_000, sent=50_000)
        started = time.monotonic()
        data, closed = answer(sock, timeout=10)
        sock.close()
    assert data.startswith(b"HTTP/1.1 408 ") and b'"error_code":40801' in data
    assert closed and time.monotonic() - started < 5


def test_unfinished_bodies_hold_no_more_than_the_cap(settings: Settings) -> None:
    """Ten connections each send 900 KiB of a 1 MiB body and stall: with a 3 MiB cap, the bodies that
    would go beyond it are refused at once (503, Retry-After, closed) and the others time out (408). The
    API is open (no key): its callers, all one, share the whole budget."""
    api_settings = with_api(
        settings, max_body_bytes=1 << 20, max_pending_body_bytes=3 << 20, body_timeout_s=3.0
    )
    app = create_app(api_settings, log=MemoryLog(auto_create=False))
    with background_server(app) as url:
        socks = [start_body(url, declared=1 << 20, sent=900 << 10) for _ in range(10)]
        time.sleep(0.5)  # every body arrived as far as it will
        early = [answer(sock, timeout=0.2) for sock in socks]
        late = [answer(sock, timeout=10) for sock in socks]
        for sock in socks:
            sock.close()
    refused = [data for data, closed in early if closed]
    assert 7 <= len(refused) <= 8  # 3 MiB hold three 900 KiB bodies (and part of a fourth's)
    answered = [d for d in refused if d]
    assert all(d.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in d.lower() for d in answered)
    assert all(b'"error_code":50004' in d for d in answered)
    timed_out = [first + rest for (first, closed), (rest, _) in zip(early, late, strict=True) if not closed]
    assert all(d.startswith(b"HTTP/1.1 408 ") for d in timed_out)
    assert all(closed for _, closed in late)


def settled(held: Callable[[], int], timeout: float = 5.0) -> int:
    """``held()`` once it stopped changing (the bodies sent arrived as far as they will)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        now = held()
        if now == last and now:
            return now
        last = now
        time.sleep(0.2)
    return last


def test_one_key_cannot_hold_the_unfinished_body_budget_of_every_tenant(settings: Settings) -> None:
    """One key opened enough slowly sent bodies (each within the size limit and the timeout) to hold all
    of ``api.max_pending_body_bytes``: every other key's requests were 503 for as long as it kept doing
    so. Each key now holds at most its share (by default a quarter of the budget, at least
    ``api.max_body_bytes``): its next body is refused, saying so, and the other key's still go through."""
    hostile, other = "tenant-hostile-key-0123", "tenant-other-key-012345"
    api_settings = with_api(
        settings,
        api_keys=[hostile, other],
        max_body_bytes=1 << 20,
        max_pending_body_bytes=2 << 20,
        body_timeout_s=15.0,  # the stalled bodies outlast the test
    )
    app = create_app(api_settings, log=MemoryLog(auto_create=False))
    pending = app.fast_path.producer.gate.pending  # type: ignore[attr-defined]
    with background_server(app) as url:
        socks = [start_body(url, declared=1 << 20, sent=512 << 10, key=hostile) for _ in range(4)]
        settled(lambda: pending.held)  # before: all 2 MiB, every tenant's budget
        record = b'{"records":[{"value":{"ind":1}}]}'
        small = httpx.post(f"{url}/topics/{USER}", content=record, headers={**KAFKA_JSON, "X-API-Key": other})
        assert small.status_code == 200, small.text
        own = httpx.post(f"{url}/topics/{USER}", content=record, headers={**KAFKA_JSON, "X-API-Key": hostile})
        assert own.status_code == 200, own.text  # a body that arrived whole holds no budget
        big = b'{"records":[{"value":{"ind":1,"note":"' + b"x" * (300 << 10) + b'"}}]}'
        slow = start_body(url, len(big), sent=0, key=other, content_type=KAFKA_JSON["Content-Type"])
        for part in (big[: len(big) // 2], big[len(big) // 2 :]):
            slow.sendall(part)
            time.sleep(0.3)  # the first half is held, pending, while the second is on its way
        data, _ = answer(slow, timeout=10)
        slow.close()
        assert data.startswith(b"HTTP/1.1 200 "), data[:300]
        more = start_body(url, declared=1 << 20, sent=1024, key=hostile)
        refused, closed = answer(more, timeout=10)
        more.close()
        for sock in socks:
            sock.close()
    assert refused.startswith(b"HTTP/1.1 503 ") and closed, refused[:300]
    assert b"retry-after: 1" in refused.lower() and b"connection: close" in refused.lower()
    error = orjson.loads(refused.partition(b"\r\n\r\n")[2])
    assert error["error_code"] == 50004
    assert "API key 'cli'" in error["message"] and "api.max_pending_body_bytes_per_key" in error["message"]


@pytest.mark.parametrize(
    "limits",
    [
        {"body_timeout_s": 0},
        {"max_body_bytes": 2 << 20, "max_pending_body_bytes": 1 << 20},
        {"max_body_bytes": 2 << 20, "max_pending_body_bytes_per_key": 1 << 20},
        {"max_pending_body_bytes": 4 << 20, "max_pending_body_bytes_per_key": 5 << 20, "max_body_bytes": 1},
    ],
)
def test_limits_that_cannot_work_are_a_clear_error(settings: Settings, limits: dict) -> None:
    with pytest.raises(ConfigError, match="body"):
        create_app(with_api(settings, **limits), log=MemoryLog(auto_create=False))


@pytest.mark.parametrize("depth", [1025, 100_000])
def test_json_nested_too_deeply_is_40001_not_a_server_error(api, depth: int) -> None:
    client, log = api
    nested = b"[" * depth + b"]" * depth
    body = b'{"records":[{"value":' + nested + b"}]}"
    response = client.post(f"/topics/{PIN}", content=body, headers=KAFKA_JSON)
    assert response.status_code == 400 and response.json()["error_code"] == 40001
    record = b'{"PartitionKey":"k","Data":' + nested + b"}"
    response = client.put(
        f"/streams/{PIN_STREAM}/record", content=record, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["error_code"] == 40001
    assert total(log, PIN) == total(log, PIN_STREAM) == 0


def test_a_value_too_deep_to_store_on_a_free_stream_is_40001(api) -> None:
    """Streams without a schema store any JSON: a value nested 1,020 levels deep, deeper than orjson
    writes and than the exact parser reads, is refused with 40001, not a 500."""
    client, log = api
    log.create_topic("streaming-free", 1)
    nested = b"[" * 1020 + b"]" * 1020
    record = b'{"PartitionKey":"k","Data":' + nested + b"}"
    response = client.put(
        "/streams/streaming-free/record", content=record, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["error_code"] == 40001
    assert "nested too deeply" in response.json()["message"]  # valid JSON: not called invalid
    assert total(log, "streaming-free") == 0


@pytest.mark.parametrize("digits", [4301, 1_000_000])
def test_an_integer_longer_than_the_parser_reads_is_40001_naming_the_limit(api, digits: int) -> None:
    """Valid JSON, but no consumer's parser reads it either: refused whole, saying why. The answer was
    Python's own advice to call sys.set_int_max_str_digits(), under 'not valid JSON'."""
    client, log = api
    body = b'{"records":[{"value":{"ind":1,"note":' + b"1" * digits + b"}}]}"
    response = client.post(f"/topics/{USER}", content=body, headers=KAFKA_JSON)
    assert response.status_code == 400 and response.json()["error_code"] == 40001
    message = response.json()["message"]
    assert f"an integer of {digits} digits" in message and "at most 4300" in message, message
    assert "sys." not in message and "not valid JSON" not in message
    assert total(log, USER) == 0


def test_a_large_body_is_parsed_off_the_event_loop(settings: Settings, monkeypatch) -> None:
    """On a log whose writer commits groups, produce bodies were parsed on the event loop: one tenant's
    10 MiB body spelling its numbers ``1.10`` (parsed in Python, number by number) held every connection
    of every tenant for 6 s. Small bodies (one record) still are, which is what the inline path is for."""
    on_loop: set[bool] = set()  # where Python's parser met a number of each request
    parse_float = exact_json._float

    def watched(text: str) -> float:
        try:
            asyncio.get_running_loop()
            on_loop.add(True)
        except RuntimeError:
            on_loop.add(False)
        return parse_float(text)

    monkeypatch.setattr(exact_json, "_float", watched)
    log = EmbeddedLog(f"embedded://{settings.workdir.resolve() / 'log'}")
    note = b"[" + b",".join([b"1.10"] * 20_000) + b"]"
    key = {"X-API-Key": "admin-key-0123456789ab"}
    try:
        with client_for(with_api(settings, admin_keys=[key["X-API-Key"]]), log) as client:
            for size, note_value in (("small", b"1.10"), ("large", note)):
                record = b'{"ind":1,"note":' + note_value + b"}"
                on_loop.clear()
                body = b'{"records":[{"value":' + record + b"}]}"
                response = client.post(f"/topics/{USER}", content=body, headers={**KAFKA_JSON, **key})
                assert response.status_code == 200
                put = b'{"PartitionKey":"k","Data":' + record + b"}"
                assert (
                    client.put(f"/streams/{GEO_STREAM}/record", content=put, headers=key).status_code == 200
                )
                assert on_loop == {size == "small"}, (size, on_loop)
            on_loop.clear()  # the wire protocol and CreateStream parse every body in the threadpool
            wire = b'{"StreamName":"' + GEO_STREAM.encode() + b'","PartitionKey":"k","Data":"eyJpbmQiOjF9"'
            target = {"X-Amz-Target": "Kinesis_20131202.PutRecord", **key}
            assert client.post("/", content=wire + b',"n":' + note + b"}", headers=target).status_code == 200
            created = client.post(
                "/streams/streaming-0a1b2c3d4e5f-big", content=b'{"n":' + note + b"}", headers=key
            )
            assert created.status_code == 200
            assert on_loop == {False}, on_loop  # the wire body, its record's Data, CreateStream
    finally:
        log.close()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_only_utf8_json_is_accepted(api, encoding: str) -> None:
    client, log = api
    body = '{"records":[{"value":{"ind":1}}]}'.encode(encoding)
    response = client.post(f"/topics/{USER}", content=body, headers=KAFKA_JSON)
    assert response.status_code == 400 and response.json()["error_code"] == 40001
    assert total(log, USER) == 0


@pytest.mark.parametrize("charset", ["iso-8859-1", "windows-1252", '"latin1"'])
def test_a_body_declaring_another_charset_is_415_not_read_as_utf8(api, charset: str) -> None:
    """The bytes C3 A9 are 'Ã©' in Latin-1 and 'é' in UTF-8: a body declared Latin-1 was read as UTF-8 and
    stored as a value the client did not send."""
    client, log = api
    body = '{"records":[{"value":{"ind":1,"note":"é"}}]}'.encode()
    stream_body = '{"Data":{"ind":1,"note":"é"},"PartitionKey":"k"}'.encode()
    for response in (
        client.post(
            f"/topics/{USER}",
            content=body,
            headers={"Content-Type": f"{KAFKA_JSON['Content-Type']}; charset={charset}"},
        ),
        client.put(
            f"/streams/{PIN_STREAM}/record",
            content=stream_body,
            headers={"Content-Type": f"application/json;charset={charset}"},
        ),
    ):
        assert response.status_code == 415 and response.json()["error_code"] == 41501, response.text
        assert "charset" in response.json()["message"]
    assert total(log, USER) == 0 and total(log, PIN_STREAM) == 0
    utf8 = {"Content-Type": f'{KAFKA_JSON["Content-Type"]}; Charset="UTF-8"'}
    assert client.post(f"/topics/{USER}", content=body, headers=utf8).status_code == 200


@pytest.mark.parametrize("compressed", [True, False])
def test_a_body_declaring_a_content_encoding_is_415_not_read_as_plain(api, compressed: bool) -> None:
    """The API decodes no Content-Encoding: a gzip body was a puzzling 40001 ('invalid start byte'), and a
    plain body declared gzip (a proxy that decompressed but kept the header) was stored as if plain."""
    client, log = api
    plain = b'{"records":[{"value":{"ind":1}}]}'
    body = gzip.compress(plain) if compressed else plain
    stream_body = b'{"Data":{"ind":1},"PartitionKey":"k"}'
    for response in (
        client.post(f"/topics/{USER}", content=body, headers={**KAFKA_JSON, "Content-Encoding": "gzip"}),
        client.put(
            f"/streams/{PIN_STREAM}/record",
            content=gzip.compress(stream_body) if compressed else stream_body,
            headers={"Content-Type": "application/json", "Content-Encoding": "GZIP"},
        ),
    ):
        assert response.status_code == 415 and response.json()["error_code"] == 41501, response.text
        assert "Content-Encoding" in response.json()["message"]
    assert total(log, USER) == 0 and total(log, PIN_STREAM) == 0
    identity = client.post(
        f"/topics/{USER}", content=plain, headers={**KAFKA_JSON, "Content-Encoding": "identity"}
    )
    assert identity.status_code == 200 and total(log, USER) == 1


def test_a_trailing_slash_is_not_redirected(api) -> None:
    client, log = api
    body = {"records": [{"value": {"ind": 1}}]}
    response = client.post(
        f"/topics/{USER}/", json=body, headers={**KAFKA_JSON, "Host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 404 and "location" not in response.headers
    assert response.json()["error_code"] == 40401
    assert total(log, USER) == 0


def test_an_unknown_route_answers_in_the_rest_proxy_shape(api) -> None:
    client, _ = api
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"error_code": 40401, "message": "Not Found"}
    assert response.headers["content-type"] == "application/vnd.kafka.v2+json"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", f"/streams/{PIN_STREAM}", "DELETE, GET, HEAD, POST"),
        ("DELETE", f"/topics/{PIN}", "GET, HEAD, POST"),
        ("GET", f"/streams/{PIN_STREAM}/records", "PUT"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
def test_a_wrong_method_answers_40501_with_every_allowed_method(
    api, method: str, path: str, allowed: str
) -> None:
    client, _ = api
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.json()["error_code"] == 40501
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize("backend", ["memory", "embedded"])
def test_one_key_parses_one_slow_body_at_a_time(settings: Settings, monkeypatch, backend: str) -> None:
    """Bodies only Python's parser reads exactly are parsed in the threadpool, where they hold the GIL:
    eight of one key's 1 MB bodies parsed at once took a single-record request of another key from
    0.7 ms to 854 ms (median). A key's bodies now go through Python's parser one at a time, while
    another key's go on beside them."""
    inside: dict[str, int] = {}
    most: dict[str, int] = {}
    lock = threading.Lock()

    def slow_loads(text: str, **kwargs: Any) -> Any:
        who = "other" if '"who":"other"' in text else "hostile"
        with lock:
            inside[who] = inside.get(who, 0) + 1
            most[who] = max(most.get(who, 0), inside[who])
        time.sleep(0.2)
        try:
            return json.loads(text, **kwargs)
        finally:
            with lock:
                inside[who] -= 1

    monkeypatch.setattr(exact_json, "json", SimpleNamespace(loads=slow_loads))
    hostile, other = "tenant-hostile-key-0123", "tenant-other-key-012345"
    log = open_backend(backend, settings)
    note = b"[" + b",".join([b"1.10"] * 5_000) + b"]"  # over INLINE_BODY_BYTES, Python's parser only

    def send(key: str, who: str) -> int:
        record = b'{"ind":1,"who":"' + who.encode() + b'","note":' + note + b"}"
        body = b'{"records":[{"value":' + record + b"}]}"
        headers = {**KAFKA_JSON, "X-API-Key": key}
        return httpx.post(f"{url}/topics/{USER}", content=body, headers=headers, timeout=60).status_code

    try:
        app = create_app(with_api(settings, api_keys=[hostile, other]), log=log)
        with background_server(app) as url, ThreadPoolExecutor(8) as pool:
            sent = [pool.submit(send, hostile, "hostile") for _ in range(6)]
            time.sleep(0.3)
            assert send(other, "other") == 200
            assert not all(s.done() for s in sent)  # not behind all of the other key's bodies
            assert [s.result() for s in sent] == [200] * 6
    finally:
        log.close()
    assert most == {"hostile": 1, "other": 1}, most


def test_a_keys_large_bodies_waiting_for_their_turn_count_in_its_share(
    settings: Settings, monkeypatch
) -> None:
    """A key's large bodies waiting for their turn in the threadpool have arrived whole, so no budget
    counted them: one key held as many as it could open connections. They now count in its share of
    ``api.max_pending_body_bytes`` while they wait, and beyond it the next is refused (503)."""

    def slow_loads(text: str, **kwargs: Any) -> Any:
        time.sleep(0.3)
        return json.loads(text, **kwargs)

    monkeypatch.setattr(exact_json, "json", SimpleNamespace(loads=slow_loads))
    key = "tenant-hostile-key-0123"
    api_settings = with_api(
        settings,
        api_keys=[key],
        max_body_bytes=1 << 20,
        max_pending_body_bytes=4 << 20,
        max_pending_body_bytes_per_key=1 << 20,
    )
    record = b'{"ind":1,"note":[' + b",".join([b"1.10"] * 60_000) + b"]}"  # 300 KB, Python's parser only
    body = b'{"records":[{"value":' + record + b"}]}"
    headers = {**KAFKA_JSON, "X-API-Key": key}
    app = create_app(api_settings, log=MemoryLog(auto_create=False))
    with background_server(app) as url, ThreadPoolExecutor(12) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.post(f"{url}/topics/{USER}", content=body, headers=headers, timeout=60),
                range(12),
            )
        )
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) == {200, 503} and statuses.count(200) >= LargeBodyWork.PER_KEY, statuses
    refused = [a for a in answers if a.status_code == 503]
    assert all(a.json()["error_code"] == 50004 and a.headers["retry-after"] == "1" for a in refused)
    assert all("API key 'cli'" in a.json()["message"] for a in refused), refused[0].text


def test_a_body_only_pythons_parser_reads_is_encoded_off_the_event_loop(
    settings: Settings, monkeypatch
) -> None:
    """Its parse went to the threadpool, but its records were then checked and encoded on the event loop:
    a 1 MB record of ``1.10`` numbers takes ~36 ms to encode, every other connection waiting. The whole
    request is now produced in the threadpool, on the v2 route and on PutRecord."""
    threads: list[str] = []
    encode = exact_json.dumps

    def watched(value: Any) -> bytes:
        encoded = encode(value)
        if b"1.10" in encoded:
            threads.append(threading.current_thread().name)
        return encoded

    monkeypatch.setattr(exact_json, "dumps", watched)
    log = open_backend("embedded", settings)
    note = b"[" + b",".join([b"1.10"] * 5_000) + b"]"  # over INLINE_BODY_BYTES, Python's parser only
    slow = b'{"ind":1,"note":' + note + b"}"
    json_headers = {"Content-Type": "application/json"}
    try:
        with background_server(create_app(settings, log=log)) as url:
            for value in (b'{"ind":1}', slow):  # the first makes the topic and stream known: inline
                answer = httpx.post(
                    f"{url}/topics/{USER}",
                    content=b'{"records":[{"value":' + value + b"}]}",
                    headers=KAFKA_JSON,
                )
                assert answer.status_code == 200, answer.text
                record = b'{"PartitionKey":"k","Data":' + value + b"}"
                answer = httpx.put(f"{url}/streams/{GEO_STREAM}/record", content=record, headers=json_headers)
                assert answer.status_code == 200, answer.text
    finally:
        log.close()
    assert len(threads) >= 2, threads
    assert "pinpipe-server" not in threads, threads  # the event loop's thread (background_server)
